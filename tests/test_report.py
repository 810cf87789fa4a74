"""`morec report` on a dataset, the shipped InvertedPendulum bundle and a synthetic closed-loop recording with the
topics the stack publishes: every PNG and the HTML page are written, the page inlines them, and inputs that are
none of these fail in one line."""

import base64
import re
from pathlib import Path

import numpy as np
import pytest
from cli_check import error_of
from mcap_ros2.writer import Writer

from morec.cli import main
from morec.collect import SineGait, rollout_dataset
from morec.report import predicted_vs_actual
from morec.task_spec import load_task_spec
from morec_ros.bag_writer import message_definition

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "models" / "inverted_pendulum"
TASK = load_task_spec("inverted_pendulum")
P = 40_000_000  # the task's control period in ns
T0 = 1_700_000_000_000_000_000
COMMAND = "/effort_controller/commands"
TYPES = {"/joint_states": "sensor_msgs/msg/JointState", COMMAND: "std_msgs/msg/Float64MultiArray",
         "/morec/prediction": "std_msgs/msg/Float64MultiArray",
         "/morec/dynamics_reward": "std_msgs/msg/Float64MultiArray",
         "/morec/prediction_error": "std_msgs/msg/Float64", "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "sine.npz"
    rollout_dataset(TASK, SineGait(TASK, 0), 300, 0, "sine", progress=False).save(path)
    return path


def obs_at(i):
    """The recorded robot's observation at state i: [slider, hinge, slider vel, hinge vel]."""
    return np.array([0.1 * np.sin(0.2 * i), 0.05 * np.cos(0.3 * i), 0.02 * np.cos(0.2 * i), -0.015 * np.sin(0.3 * i)])


def stamp(ns):
    return {"sec": ns // 10**9, "nanosec": ns % 10**9}


def write_recording(path, states=150):
    """What morec_record writes of a lockstep run: a state every period, the command 1 ms later, the filter's
    prediction (the true next state + 0.001) and scores 2 ms later, the dynamics node's error, and the filter's
    /diagnostics every 25 states, warning of a gap in the second half."""
    messages = []
    for i in range(states):
        sent = T0 + i * P
        obs = obs_at(i)
        messages.append((sent, "/joint_states", {
            "header": {"stamp": stamp(i * P), "frame_id": ""}, "name": ["slider", "hinge"],
            "position": [obs[0], obs[1]], "velocity": [obs[2], obs[3]], "effort": []}))
        messages.append((sent + 1_000_000, COMMAND, {"layout": {"dim": [], "data_offset": 0}, "data": [0.1]}))
        messages.append((sent + 2_000_000, "/morec/prediction",
                         {"layout": {"dim": [], "data_offset": 0}, "data": list(obs_at(i + 1) + 0.001)}))
        messages.append((sent + 2_000_000, "/morec/dynamics_reward",
                         {"layout": {"dim": [], "data_offset": 0}, "data": [0.9, 0.8 if i < states // 2 else 0.3]}))
        messages.append((sent + 3_000_000, "/morec/prediction_error", {"data": 0.002}))
        if i % 25 == 24:
            gap = i > states // 2
            values = {"real_score_mean": 0.3 if gap else 0.8, "one_step_error_mean": 0.01,
                      "disagreement_mean": 0.02, "selected_score_mean": 0.9, "gap_warning": gap}
            messages.append((sent + 4_000_000, "/diagnostics", {
                "header": {"stamp": stamp(i * P), "frame_id": ""},
                "status": [{"level": 1 if gap else 0, "name": "morec_filter: consistency monitor",
                            "message": "", "hardware_id": "test",
                            "values": [{"key": k, "value": str(v)} for k, v in values.items()]}]}))
    with open(path, "wb") as f:
        writer = Writer(f)
        schemas = {t: writer.register_msgdef(name, message_definition(name)) for t, name in TYPES.items()}
        writer.add_metadata("morec", {"task": "inverted_pendulum", "command_topic": COMMAND})
        for sent, topic, msg in sorted(messages, key=lambda m: m[0]):
            writer.write_message(topic, schemas[topic], msg, log_time=sent + 100_000, publish_time=sent)
        writer.finish()
    return path


def run_report(argv, capsys) -> tuple[Path, str]:
    assert main(["report", *argv]) == 0
    printed = capsys.readouterr().out
    page = Path(re.search(r"wrote (\S+report\.html)", printed).group(1))
    return page, printed


def assert_page_inlines(page: Path, names: list[str]):
    text = page.read_text()
    for name in names:
        png = page.parent / name
        assert png.is_file() and png.stat().st_size > 1000, name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f'alt="{name}" src="data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}"' in text
    assert text.count("data:image/png;base64,") == len(names)


def test_dataset_coverage_against_a_bundle_and_a_reference(dataset, tmp_path, capsys):
    reference = tmp_path / "random.npz"
    rollout_dataset(TASK, None, 200, 1, "random", progress=False).save(reference)
    page, printed = run_report([str(dataset), "--bundle", str(BUNDLE), "--reference", str(reference),
                                "--horizon", "5", "--starts", "20", "--out", str(tmp_path / "r")], capsys)
    assert_page_inlines(page, ["coverage_states.png", "coverage_actions.png", "rollout_error.png"])
    text = page.read_text()
    assert "outside the reference&#x27;s range" in text and "beyond 3 std of the bundle&#x27;s normaliser" in text
    assert "hinge vel" in text  # dimensions named from the task spec


def test_bundle_training_curves_and_rollout_error(dataset, tmp_path, capsys):
    from morec.dataset import Dataset
    from morec.ensemble import EnsembleConfig, train_ensemble

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    for name in ("card.json", "ensemble.onnx", "dynamics_reward.onnx"):
        (bundle / name).write_bytes((BUNDLE / name).read_bytes())
    # The log a real (tiny) training run writes, so the report reads the columns training produces.
    train_ensemble(Dataset.load(dataset), EnsembleConfig(members=2, elites=1, hidden=(8,), weight_decay=(1e-5, 1e-5),
                                                   max_epochs=3),
                   log_csv=bundle / "ensemble_log.csv", progress=False)
    page, printed = run_report([str(bundle), "--data", str(dataset), "--horizon", "5", "--starts", "20",
                                "--out", str(tmp_path / "r")], capsys)
    assert_page_inlines(page, ["training_ensemble_log.png", "training_holdout_mse.png", "coverage_states.png",
                               "coverage_actions.png", "rollout_error.png"])
    assert "not drawn" not in printed
    for mode in ("filter", "random_elite", "elite_mean"):
        assert f"<td>{mode}</td>" in page.read_text()


def test_bundle_alone_says_what_more_it_needs(tmp_path, capsys):
    page, printed = run_report([str(BUNDLE), "--out", str(tmp_path / "r")], capsys)
    assert_page_inlines(page, ["training_holdout_mse.png"])
    assert "not drawn: rollout error against horizon and coverage: pass --data" in printed


def test_recording_predictions_and_monitor(tmp_path, capsys):
    recording = write_recording(tmp_path / "run.mcap")
    page, printed = run_report([str(recording), "--window", "2", "--out", str(tmp_path / "r")], capsys)
    assert_page_inlines(page, ["recording_prediction.png", "recording_monitor.png"])
    text = page.read_text()
    assert "149 predictions paired" in text  # the last prediction has no next state
    assert "3 of 6 monitor reports warned" in text
    assert "filter node&#x27;s default for r_D" in text  # the shipped bundle has no monitor calibration


def test_predictions_pair_with_the_state_one_period_later(tmp_path):
    from morec.mcap_import import read_recording

    recording = read_recording(write_recording(tmp_path / "run.mcap", states=10), set(TYPES))
    by_topic = {t: [m for m in recording.messages if m.topic == t] for t in TYPES}
    predicted, actual = predicted_vs_actual(by_topic["/joint_states"], by_topic[COMMAND],
                                            by_topic["/morec/prediction"], TASK, T0)
    np.testing.assert_allclose(actual.values, [obs_at(i) for i in range(1, 10)])
    np.testing.assert_allclose(predicted.values - actual.values, 0.001, atol=1e-12)
    np.testing.assert_allclose(actual.time, np.arange(1, 10) * 0.04)


@pytest.mark.parametrize("content", [b"just some notes\n", bytes(range(256)) * 4])
def test_a_file_that_is_no_input_fails_in_one_line(tmp_path, capsys, content):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(content)
    line = error_of(["report", str(junk), "--out", str(tmp_path / "r")], capsys)
    assert line.startswith("morec report: error:") and "is not a recording (MCAP), model bundle or dataset" in line
    assert not (tmp_path / "r").exists()


def test_an_empty_folder_and_a_missing_path_fail_in_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    line = error_of(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "r")], capsys)
    assert "is not a recording (no .mcap files), model bundle" in line
    line = error_of(["report", str(tmp_path / "absent.npz")], capsys)
    assert "absent.npz" in line and "not found" in line
