"""`colcon test`: the package finds the task specs and default bundles it ships, wherever it is installed."""

from morec.bundle import ENSEMBLE_ONNX, REWARD_ONNX
from morec.share import share_dir
from morec.task_spec import available_tasks, load_task_spec, sim_dir


def test_every_task_spec_loads_with_its_offline_rl_settings():
    tasks = available_tasks()
    assert "inverted_pendulum" in tasks and "halfcheetah" in tasks, (sim_dir(), tasks)
    for name in tasks:
        assert load_task_spec(name).name == name
        assert (sim_dir() / "offline_rl" / f"{name}.yaml").is_file()


def test_default_bundles_are_shipped():
    for task in ("halfcheetah", "inverted_pendulum"):
        for name in (ENSEMBLE_ONNX, REWARD_ONNX):
            assert (share_dir("morec") / "models" / task / name).is_file()
