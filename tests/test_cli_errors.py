"""Bad input to the `morec` CLI: one line that names the problem, a non-zero exit, no traceback."""

import shutil
from pathlib import Path

from cli_check import error_of

from morec.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_a_tuple_override_written_as_a_python_tuple_names_the_key_and_the_form(tmp_path, capsys):
    line = error_of(["train-dynamics", "--data", "x.npz", "--bundle", str(tmp_path), "--hidden", "(32,32)"], capsys)
    assert "--hidden" in line and "200 200 200 200" in line and "(32,32)" in line


def test_an_override_the_config_rejects_gives_its_reason(tmp_path, capsys):
    line = error_of(["train-policy", "--bundle", "models/inverted_pendulum", "--data", "x.npz", "--level", "random",
                     "--out", str(tmp_path), "--real-ratio", "2"], capsys)
    assert line.startswith("morec train-policy: error:") and "real_ratio" in line
    assert "x.npz" not in line  # refused by the parser, before any data is read


def test_a_value_of_the_wrong_type_names_the_flag_and_the_value(tmp_path, capsys):
    line = error_of(["train-dynamics", "--data", "x.npz", "--bundle", str(tmp_path), "--members", "3.5"], capsys)
    assert "--members" in line and "3.5" in line and "INT" in line


def test_an_unknown_flag_is_named(tmp_path, capsys):
    line = error_of(["train-reward", "--data", "x.npz", "--bundle", str(tmp_path), "--iteration", "5"], capsys)
    assert line.startswith("morec train-reward: error:") and "--iteration 5" in line


def test_the_old_set_form_says_what_replaced_it(tmp_path, capsys):
    line = error_of(["train-dynamics", "--data", "x.npz", "--bundle", str(tmp_path), "--set", "hidden=64,64"], capsys)
    assert "--set hidden=64,64" in line and "--key a b" in line


def test_a_missing_flag_a_bad_choice_and_a_missing_command_are_named(tmp_path, capsys):
    assert "missing --bundle" in error_of(["train-dynamics", "--data", "x.npz"], capsys)
    line = error_of(["collect", "--task", "inverted_pendulum", "--level", "good", "--out", "d.npz"], capsys)
    assert "--level" in line and "'good'" in line and "medium-replay" in line
    assert error_of(["behavior"], capsys) == "morec behavior: error: choose a command: train"


def test_a_negative_step_count_is_refused_by_the_parser(tmp_path, capsys):
    line = error_of(["collect", "--task", "inverted_pendulum", "--level", "random", "--steps", "-5",
                     "--out", str(tmp_path / "d.npz")], capsys)
    assert "--steps" in line and "-5" in line


def test_a_file_that_is_not_a_dataset_says_so(tmp_path, capsys):
    junk = tmp_path / "notes.npz"
    junk.write_text("not a dataset")
    line = error_of(["train-policy", "--bundle", "models/inverted_pendulum", "--data", str(junk), "--level", "random",
                     "--out", str(tmp_path / "run")], capsys)
    assert line.startswith("morec train-policy: error:") and "not a readable morec dataset" in line


def test_an_unknown_task_level_names_the_levels(tmp_path, capsys):
    from morec.collect import rollout_dataset
    from morec.task_spec import load_task_spec

    data = tmp_path / "d.npz"
    rollout_dataset(load_task_spec("inverted_pendulum"), None, 50, 0, "random", progress=False).save(data)
    line = error_of(["train-policy", "--bundle", "models/inverted_pendulum", "--data", str(data), "--level", "expert",
                     "--out", str(tmp_path / "run")], capsys)
    assert "expert" in line and "medium" in line


def test_export_without_a_reward_model_says_so(tmp_path, capsys):
    from morec.ensemble import EnsembleConfig, EnsembleDynamics

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    model = EnsembleDynamics(4, 1, EnsembleConfig(hidden=(8,), weight_decay=(0.0, 0.0)))
    model.save(bundle / "ensemble.pt")
    assert main(["export", "--bundle", str(bundle)]) == 0
    assert "no dynamics_reward.pt" in capsys.readouterr().out
    assert (bundle / "ensemble.onnx").exists()


def test_a_missing_model_file_is_one_line(tmp_path, capsys):
    shutil.copy(ROOT / "models" / "inverted_pendulum" / "card.json", tmp_path / "card.json")
    line = error_of(["monitor", "--bundle", str(tmp_path), "--task", "inverted_pendulum"], capsys)
    assert "ensemble.onnx" in line and "not found" in line


def test_monitor_recordings_given_without_calibration_or_a_name_are_one_line(tmp_path, capsys):
    base = ["monitor", "--bundle", str(tmp_path), "--task", "inverted_pendulum"]
    assert "need --calibration-data" in error_of([*base, "--nominal-data", "held.npz"], capsys)
    line = error_of([*base, "--calibration-data", "cal.npz", "--perturbed-data", "heavy.npz"], capsys)
    assert "NAME=DATASET" in line and "heavy.npz" in line
