"""bench/d3rlpy_baselines.py trains a tiny cell on a dataset in the project's format and writes the result schema.

Runs only where bench/d3rlpy_setup.sh has built .venv-d3rlpy (it downloads d3rlpy, so CI does not)."""

import json
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from morec.dataset import Dataset

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv-d3rlpy" / "bin" / "python"

pytestmark = pytest.mark.skipif(not PYTHON.exists(),
                                reason=".venv-d3rlpy is absent (build it with `bash bench/d3rlpy_setup.sh`)")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Two contiguous HalfCheetah-shaped episodes, one ending at a timeout and one at a terminal."""
    rng = np.random.default_rng(0)
    parts = []
    for length in (150, 100):
        states = rng.normal(size=(length + 1, 17))
        parts.append((states[:-1], states[1:], rng.uniform(-1, 1, size=(length, 6)), rng.normal(size=length)))
    obs, nxt, act, rew = (np.concatenate(x) for x in zip(*parts))
    terminals, timeouts = np.zeros(250, bool), np.zeros(250, bool)
    timeouts[149], terminals[249] = True, True
    path = tmp_path_factory.mktemp("d3rlpy") / "halfcheetah-tiny.npz"
    Dataset(obs, act, rew, nxt, terminals, timeouts, {"env_id": "HalfCheetah-v5"}).save(path)
    return path


def run(data, out, algo):
    cmd = [str(PYTHON), str(ROOT / "bench" / "d3rlpy_baselines.py"), "--algo", algo, "--data", str(data),
           "--task", "halfcheetah", "--seed", "1", "--steps", "200", "--eval-every", "100",
           "--eval-episodes", "1", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)


@pytest.mark.parametrize("algo,method", [("bc", "BC"), ("td3bc", "TD3+BC")])
def test_tiny_cell_writes_the_result_schema(data, tmp_path, algo, method):
    out = tmp_path / f"{algo}_seed1.json"
    proc = run(data, out, algo)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert set(res) == {"method", "dataset", "seed", "budget_steps", "curve", "final", "config", "steps_per_s",
                        "command", "library"}
    assert (res["method"], res["dataset"], res["seed"], res["budget_steps"]) == (method, "halfcheetah-tiny", 1, 200)
    assert [p["step"] for p in res["curve"]] == [100, 200]
    assert set(res["final"]) == {"return_mean", "return_std", "score_mean"}
    assert all(math.isfinite(v) for p in res["curve"] for v in p.values())
    assert res["final"]["score_mean"] == res["curve"][-1]["score_mean"]
    assert res["config"]["data_transitions"] == 250 and res["config"]["data_episodes"] == 2
    assert res["steps_per_s"] > 0 and res["library"].startswith("d3rlpy 2.8")
    assert not out.with_name(out.name + ".ckpt").exists()
    # A finished cell is skipped on a rerun.
    again = run(data, out, algo)
    assert again.returncode == 0 and "skipping" in again.stdout
