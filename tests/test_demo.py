"""`morec_demo` end to end: the four nodes as processes, one short InvertedPendulum episode, its report."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy")
from rosproc import MULTIPROCESS, REPO, fresh_domain  # noqa: E402

pytestmark = MULTIPROCESS
from test_closed_loop import random_return  # noqa: E402

STEPS = 60
DEMO = Path(sys.executable).parent / "morec_demo"


def demo(tmp_path, mode, domain, *extra):
    args = [str(DEMO), "--task", "inverted_pendulum", "--steps", str(STEPS), "--mode", mode,
            "--domain-id", str(domain), "--out", str(tmp_path), "--timeout", "90", *extra]
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=150,
                          env=dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST"))


def run_demo(tmp_path, mode, domain, *extra):
    proc = demo(tmp_path, mode, domain, *extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    stem = tmp_path / f"inverted_pendulum_nominal_{mode}"
    assert stem.with_suffix(".png").stat().st_size > 10_000
    assert f"plot             {stem.with_suffix('.png')}" in proc.stdout
    return json.loads(stem.with_suffix(".json").read_text()), proc.stdout


def test_lockstep_demo_balances_and_reports(tmp_path):
    # The watchdog's limit raised from 5 periods to 50: a loaded machine that stalls the sim for 0.2 s is not
    # a robot that stopped answering (test_controller_safety tests the watchdog).
    s, out = run_demo(tmp_path, "lockstep", fresh_domain(), "--controller", "stale_periods=50")
    c, r = s["control"], s["consistency"]
    assert (s["task"], s["mode"], s["variant"], s["max_steps"]) == ("inverted_pendulum", "lockstep", "nominal", STEPS)
    assert s["normalized_score"] is None  # D4RL has no pendulum
    # Lockstep: one command and one fresh plan per step, and nothing acts without a fresh state.
    assert 50 <= s["steps"] <= STEPS and c["commands"] == s["steps"] and c["stale_events"] == 0
    assert s["episode_return"] >= 5 * random_return(episode_length=STEPS)
    # One plan per command; the plan goes out after its command, so the episode's last one may land after the
    # last state, outside the window both rates count over.
    plans_in_window = round(c["plan_rate_hz"] * c["wall_s"])
    assert c["achieved_rate_hz"] > 0 and c["commands"] - 1 <= plans_in_window <= c["commands"]
    assert c["nominal_rate_hz"] == 25.0 and c["plans"] >= s["steps"]
    assert 0 <= c["latency_p50_ms"] <= c["latency_p99_ms"] and 0 <= c["deadline_misses"] <= c["plans"]
    # Scores are paired with states by the command each names (tests/test_episode_report.py), within r_D's range
    # [0.31, 1.32]. A filter node that joined the graph late misses the first steps: most must be scored.
    assert r["transitions"] >= 0.85 * s["steps"] and s["prediction"]["pairs"] >= 0.85 * s["steps"]
    assert 0.31 <= r["min"] <= r["mean"] <= 1.32 and 0 <= r["share_below_threshold"] <= 1
    assert "episode return" in out and "consistency r_D" in out


def test_realtime_demo_keeps_the_control_rate(tmp_path):
    s, _ = run_demo(tmp_path, "realtime", fresh_domain())
    c = s["control"]
    assert s["steps"] >= 1 and s["mode"] == "realtime"
    # The sim steps on the wall clock, never ahead of it (behind it only as far as a loaded machine delays its
    # timer); the controller commands at least once per step of the robot and at most twice, planner or not:
    # each plan's action when it is ready, and the timer's (the latest plan's next action) when the period's
    # own plan had not answered by the tick.
    assert 0.5 <= c["real_time_factor"] <= 1.1
    assert 0.8 * s["steps"] <= c["commands"] <= 2.0 * s["steps"]


def test_demo_fails_when_a_node_cannot_start(tmp_path):
    proc = demo(tmp_path, "lockstep", fresh_domain(), "--bundle", str(tmp_path / "no_bundle"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "the episode did not complete: a node failed" in proc.stderr
    assert "cannot start" in proc.stdout and not list(tmp_path.glob("*.json"))
