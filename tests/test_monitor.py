"""The gap monitor (morec.monitor) and `morec monitor`: windows, calibration, detection, real signals."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from morec import monitor
from morec.bundle import ENSEMBLE_ONNX, REWARD_ONNX, read_card
from morec.cli import main as morec
from morec.collect import robot_episodes
from morec.dataset import Dataset
from morec.rollout import FilteredDynamics
from morec.runtime import OnnxDynamics, OnnxReward
from morec.task_spec import load_task_spec

ROOT = Path(__file__).resolve().parents[1]


def series(rng, n, error=0.05, score=0.9, disagreement=1.0):
    return {"one_step_error": error + 0.01 * rng.random(n), "dynamics_reward": score - 0.02 * rng.random(n),
            "disagreement": disagreement + 0.1 * rng.random(n)}


def test_window_means_are_the_means_of_every_full_window():
    values = np.arange(10.0) ** 2
    expected = [values[i:i + 4].mean() for i in range(7)]
    np.testing.assert_allclose(monitor.window_means(values, 4), expected)
    assert monitor.window_means(values, 11).size == 0


def test_streaming_monitor_alarms_when_the_batch_rule_says_so():
    rng = np.random.default_rng(0)
    values = np.concatenate([series(rng, 30)["one_step_error"], 0.5 + rng.random(30)])
    limit, window = 0.2, 5
    stream = monitor.GapMonitor({"one_step_error": limit}, window)
    alarms = [bool(stream.update({"one_step_error": v})) for v in values]
    first = monitor.first_alarm({"one_step_error": values}, {"one_step_error": limit}, window)["one_step_error"]
    assert alarms.index(True) + 1 == first  # first_alarm counts transitions
    assert not any(alarms[: window - 1])  # never before a full window


def test_signals_alarm_in_their_own_direction():
    low_score = monitor.GapMonitor({"dynamics_reward": 0.6}, 2)
    assert low_score.update({"dynamics_reward": 0.9}) == []
    assert low_score.update({"dynamics_reward": 0.2}) == ["dynamics_reward"]  # mean 0.55 < 0.6
    high_error = monitor.GapMonitor({"one_step_error": 0.1}, 1)
    assert high_error.update({"one_step_error": 0.05}) == []
    assert high_error.update({"one_step_error": 0.5}) == ["one_step_error"]
    with pytest.raises(ValueError, match="unknown signals"):
        monitor.GapMonitor({"temperature": 1.0}, 5)


def test_calibrated_thresholds_clear_every_calibration_window_and_catch_a_shift():
    rng = np.random.default_rng(1)
    nominal = [series(rng, 200) for _ in range(4)]
    cal = monitor.calibrate(nominal, window=20, margin=1.0)
    assert cal.thresholds["one_step_error"] > max(monitor.window_means(ep["one_step_error"], 20).max()
                                                  for ep in nominal)
    assert cal.thresholds["dynamics_reward"] < min(monitor.window_means(ep["dynamics_reward"], 20).min()
                                                   for ep in nominal)
    held_out = [series(rng, 200) for _ in range(4)]
    shifted = [series(rng, 200, error=0.2) for _ in range(4)]  # the model's error quadruples
    result = monitor.evaluate(held_out, shifted, cal, control_period=0.05)
    err = result["one_step_error"]
    assert err["detection_rate"] == 1.0 and err["false_alarm_rate"] == 0.0
    assert err["time_to_detect_steps_median"] == 20 and err["time_to_detect_s_median"] == pytest.approx(1.0)
    assert err["transition_auc"] == 1.0
    assert result["dynamics_reward"]["detection_rate"] == 0.0  # unchanged signal: no detection
    assert result["any"]["detection_rate"] == 1.0
    with pytest.raises(ValueError, match="full window"):
        monitor.calibrate([series(rng, 10)], window=20)


def test_real_signals_of_the_shipped_model_worsen_on_a_delayed_robot():
    task = load_task_spec("halfcheetah")
    bundle = ROOT / "models" / "halfcheetah"
    dynamics = OnnxDynamics(bundle / ENSEMBLE_ONNX, "cpu", 1, task.obs_dim, task.action_dim)
    reward = OnnxReward(bundle / REWARD_ONNX, "cpu", 1, task.obs_dim, task.action_dim)
    scale = np.asarray(dynamics.meta["input_std"][: task.obs_dim], np.float32)
    runs = {v: robot_episodes(task, v, None, 1, 150, seed=3)[0] for v in ("nominal", "delayed")}
    assert runs["nominal"]["obs"].shape == (150, task.obs_dim) and runs["nominal"]["act"].shape == (150, 6)
    signals = {v: monitor.transition_signals(dynamics, reward, scale, **ep) for v, ep in runs.items()}
    assert all(s.shape == (150,) for s in signals["nominal"].values())
    # A one-step actuation delay breaks the (s, a) -> s' relation the model learned.
    assert signals["delayed"]["one_step_error"].mean() > 2 * signals["nominal"]["one_step_error"].mean()
    # The filter node reuses its filter step's prediction: the same signals without a second ensemble call.
    ep = runs["delayed"]
    step = FilteredDynamics(dynamics, reward).step(ep["obs"], ep["act"], np.random.default_rng(0))
    reused = monitor.transition_signals(dynamics, reward, scale, **ep, step=step)
    for name, values in signals["delayed"].items():
        np.testing.assert_allclose(reused[name], values, rtol=1e-5, atol=1e-6)


def test_monitor_command_writes_a_report_and_the_card(tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(ROOT / "models" / "halfcheetah", bundle)
    out = tmp_path / "monitor.json"
    offline_policy = str(ROOT / "models" / "halfcheetah" / "policy.onnx")
    assert morec(["monitor", "--bundle", str(bundle), "--task", "halfcheetah", "--variants", "delayed",
                  "--policies", "random", "sine", "--unseen-policies", offline_policy,
                  "--episodes", "2", "--steps", "120", "--window", "20", "--out", str(out), "--write-card"]) == 0
    report = json.loads(out.read_text())
    assert set(report["calibration"]["thresholds"]) == set(monitor.SIGNALS)
    assert report["policies"] == ["random", "sine"]
    delayed = report["evaluation"]["delayed"]
    assert delayed["one_step_error"]["detection_rate"] == 1.0
    assert report["unseen_policies"][offline_policy]["episodes"] == 2
    assert read_card(bundle)["monitor"]["calibration"] == report["calibration"]


def test_false_alarms_count_the_unseen_episodes_that_alarm():
    calibration = monitor.Calibration(window=3, margin=0.25, thresholds={"one_step_error": 1.0, "dynamics_reward": 0.5},
                                      nominal_window_means={})
    quiet = {"one_step_error": np.full(10, 0.5), "dynamics_reward": np.full(10, 0.8), "disagreement": np.ones(10)}
    # A spike above 1.0 that the 3-transition mean still sees, and a dip that it averages away.
    spike = {**quiet, "one_step_error": np.r_[np.full(5, 0.5), np.full(3, 1.5), np.full(2, 0.5)]}
    dip = {**quiet, "dynamics_reward": np.r_[np.full(5, 0.8), 0.1, np.full(4, 0.8)]}
    result = monitor.false_alarms([quiet, spike, dip], calibration)
    assert result == {"episodes": 3, "episodes_alarmed": 1, "false_alarm_rate": 1 / 3, "signals": ["one_step_error"]}


def recording(task, variant, seed, path):
    """Simulated runs saved as a dataset, as `morec dataset from-mcap` writes a robot's recording."""
    episodes = robot_episodes(task, variant, None, 2, 120, seed)
    ends = np.concatenate([np.arange(len(ep["obs"])) == len(ep["obs"]) - 1 for ep in episodes])
    data = Dataset(observations=np.concatenate([ep["obs"] for ep in episodes]),
                   actions=np.concatenate([ep["act"] for ep in episodes]), rewards=np.zeros(len(ends)),
                   next_observations=np.concatenate([ep["next_obs"] for ep in episodes]),
                   terminals=np.zeros(len(ends), bool), timeouts=ends, metadata={"env_id": task.env_id})
    assert [len(ep["obs"]) for ep in monitor.recorded_episodes(data)] == [len(ep["obs"]) for ep in episodes]
    data.save(path)
    return str(path)


def test_monitor_calibrates_on_recordings_without_the_simulator(tmp_path):
    task = load_task_spec("halfcheetah")
    bundle = tmp_path / "bundle"
    shutil.copytree(ROOT / "models" / "halfcheetah", bundle)
    out = tmp_path / "monitor.json"
    assert morec(["monitor", "--bundle", str(bundle), "--task", "halfcheetah", "--window", "20", "--out", str(out),
                  "--calibration-data", recording(task, "nominal", 0, tmp_path / "cal.npz"),
                  "--nominal-data", recording(task, "nominal", 1, tmp_path / "held.npz"),
                  "--perturbed-data", f"delayed={recording(task, 'delayed', 2, tmp_path / 'delayed.npz')}"]) == 0
    report = json.loads(out.read_text())
    assert "policies" not in report and report["unseen_policies"] == {}
    assert list(report["evaluation"]) == ["delayed"]
    assert report["evaluation"]["delayed"]["one_step_error"]["detection_rate"] == 1.0
    assert report["evaluation"]["delayed"]["any"]["false_alarm_rate"] is not None  # judged on the held-out recording
