"""The offline-RL grid runner: cells are independent, resumable jobs, run here or on a Ray cluster."""

import importlib.util
import json
from pathlib import Path

import pytest

from morec.collect import rollout_dataset
from morec.task_spec import load_task_spec

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("offline_grid", ROOT / "bench" / "offline_grid.py")
offline_grid = importlib.util.module_from_spec(spec)
spec.loader.exec_module(offline_grid)

TINY = ["--eval-every", "30", "--eval-episodes", "1", "--rollout-batch", "32", "--rollout-every", "30"]


@pytest.fixture
def pendulum_cells(tmp_path, monkeypatch):
    data = tmp_path / "pendulum.npz"
    rollout_dataset(load_task_spec("inverted_pendulum"), None, 500, seed=0, policy_name="random",
                    progress=False).save(data)
    monkeypatch.setitem(offline_grid.DATASETS, "inverted_pendulum-random",
                        (str(data), str(ROOT / "models" / "inverted_pendulum"), "random"))
    return ["--datasets", "inverted_pendulum-random", "--methods", "morec-mopo", "mopo", "--seeds", "0",
            "--steps", "30", "--root", str(tmp_path), *TINY]


def test_two_cells_run_on_a_local_ray_instance_and_finished_cells_are_skipped(pendulum_cells, tmp_path, capsys):
    pytest.importorskip("ray")
    assert offline_grid.main([*pendulum_cells, "--ray", "local"]) == 0
    results = tmp_path / "docs" / "results" / "offline" / "inverted_pendulum-random"
    for method, name in (("morec-mopo", "MOREC-MOPO"), ("mopo", "MOPO")):
        result = json.loads((results / f"{method}_seed0.json").read_text())
        assert result["method"] == name and result["budget_steps"] == 30 and result["curve"]
    capsys.readouterr()
    assert offline_grid.main(pendulum_cells) == 0  # everything is done: nothing runs again
    out = capsys.readouterr().out
    assert out.count("   done") == 2 and "0 of 0 cells finished" in out


def test_an_interrupted_cell_resumes_from_its_checkpoint(pendulum_cells, tmp_path):
    cmd, _ = offline_grid.cell_command("mopo", "inverted_pendulum-random", 0, 60, TINY, tmp_path, 1)
    assert "--resume" not in cmd
    run = Path(cmd[cmd.index("--out") + 1])
    run.mkdir(parents=True)
    (run / "checkpoint.pt").touch()
    cmd, _ = offline_grid.cell_command("mopo", "inverted_pendulum-random", 0, 60, TINY, tmp_path, 1)
    assert "--resume" in cmd
