"""The demo's episode report without ROS processes: a synthetic recording lined up, summarised and printed."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")
from morec.task_spec import load_task_spec  # noqa: E402
from morec_ros.common import labelled, named  # noqa: E402
from morec_ros.episode_recorder import Recording, episode  # noqa: E402
from morec_ros.episode_report import THRESHOLD, print_summary, summarize  # noqa: E402

SPEC = load_task_spec("halfcheetah")
MS = 1_000_000  # ns
PERIOD = 50 * MS  # HalfCheetah's control period
REWARDS = [1.5, -0.5, 2.0, 3.0, 4.0]
REAL = [0.9, 0.2, 0.95, 0.4, 1.0]  # r_D of the real transitions into states 1..5
METRICS = dict(lockstep=True, plans=7, commands=6, deadline_misses=2, stale_events=0, latency_p50_ms=31.5,
               latency_p99_ms=48.25, lead_periods=0, control_rate_hz=20.0)


def recording() -> Recording:
    """Five steps in lockstep, state k sent at k periods, its command 10 ms later; a plan made before the episode
    and the next episode's first state, command and plan around it."""
    rec = Recording()
    obs = np.arange(6 * SPEC.obs_dim, dtype=float).reshape(6, SPEC.obs_dim)
    for k in range(6):
        rec.states.append((k * PERIOD, k * PERIOD, obs[k]))
    rec.states.append((6 * PERIOD, 5 * PERIOD, obs[0]))  # the reset repeats the last stamp
    rec.plans.append(-5 * MS)  # the warm-up's plan, before the episode
    for k in range(7):
        rec.plans.append(k * PERIOD + 9 * MS)
        rec.commands.append(k * PERIOD + 10 * MS)
        if k < 6:  # the filter on the command: the next state predicted 0.1 off, the transition into state k scored;
            # a busy filter answers a period late, after the next command (the score names the one it answers)
            late = PERIOD if k % 2 else 0
            rec.predictions.append((k * PERIOD + 15 * MS + late, obs[min(k + 1, 5)] + np.eye(SPEC.obs_dim)[0] * 0.1))
            rec.scores.append((k * PERIOD + 20 * MS + late, [1.0 + 0.01 * k, REAL[k - 1] if k else float("nan"),
                                                             (k * PERIOD + 10 * MS) * 1e-9]))
    rec.end = 6
    rec.returns.append(sum(REWARDS))
    rec.metrics += [(3 * PERIOD, dict(METRICS, plans=3)), (6 * PERIOD + 30 * MS, METRICS)]
    rec.planner = "mppi (filtered) on models/halfcheetah"
    rec.monitor += [{"gap_warning": "False", "transitions": "2", "gap_signals": ""},
                    {"gap_warning": "True", "transitions": "4", "gap_signals": "real_score disagreement",
                     "real_score_mean": "0.69", "disagreement_mean": "0.125"}]
    return rec


def test_the_summary_of_a_recorded_episode(tmp_path, capsys):
    rec = recording()
    assert rec.complete  # the controller reported after the episode
    ep = episode(rec)
    s = summarize(SPEC, ep, {"horizon": 30}, variant="real", mode="lockstep", one_process=False, max_steps=1000)

    assert (s["steps"], s["episode_return"]) == (5, 10.0)
    assert s["normalized_score"] == pytest.approx(100 * (10.0 + 280.178953) / (12135.0 + 280.178953))
    c = s["control"]
    # Only what was sent between the first and the last state counts: not the warm-up's plan nor the next episode's.
    assert (c["commands"], ep.plans, c["wall_s"]) == (5, 5, pytest.approx(0.25))
    assert c["achieved_rate_hz"] == pytest.approx(20.0) == c["plan_rate_hz"] == c["nominal_rate_hz"]
    assert c["real_time_factor"] == pytest.approx(1.0) and c["deadline_ms"] == pytest.approx(50.0)
    # The controller's own figures come from its report after the episode.
    assert (c["plans"], c["deadline_misses"], c["latency_p50_ms"], c["latency_p99_ms"]) == (7, 2, 31.5, 48.25)
    assert c["planner"] == rec.planner and c["settings"] == {"horizon": 30}

    r = s["consistency"]
    assert (r["transitions"], r["threshold"], r["min"]) == (5, THRESHOLD, 0.2)
    assert r["mean"] == pytest.approx(np.mean(REAL))
    assert r["share_below_threshold"] == pytest.approx(np.mean(np.array(REAL) < THRESHOLD)) == pytest.approx(0.4)
    assert ep.selected == {k + 1: 1.0 + 0.01 * k for k in range(5)}
    assert s["prediction"] == {"pairs": 5, "one_step_error_mean": pytest.approx(0.1)}
    assert s["monitor"] == {"warned": True, "first_warning_at_transition": 4,
                            "signals": ["disagreement", "real_score"],
                            "final_means": {"real_score_mean": 0.69, "disagreement_mean": 0.125}}

    print_summary(s, Path("tasks/halfcheetah.yaml"), tmp_path / "x.png", tmp_path / "x.json")
    out = capsys.readouterr().out
    assert "episode return   10.00 over 5 steps (terminated); D4RL-normalised score 2.3 (D4RL scores" in out
    assert "2 of 7 plans missed the 50 ms deadline" in out
    assert "consistency r_D  mean 0.690, min 0.200, 40.0% below 0.6 over 5 real transitions" in out
    assert "gap monitor      WARNED from real transition 4 on (disagreement, real_score)" in out


def test_an_episode_is_complete_once_the_controller_reported_after_it():
    rec = recording()
    rec.metrics.pop()  # only the report from during the episode
    assert not rec.complete


def test_labelled_numbers_keep_their_names():
    msg = labelled(dict(plans=3, lockstep=True, latency_p50_ms=12.5))
    assert msg.layout.dim[0].size == 3 and named(msg) == dict(plans=3.0, lockstep=1.0, latency_p50_ms=12.5)
