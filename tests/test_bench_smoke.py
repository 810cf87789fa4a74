"""bench/planner_speed.py runs end to end on the tiny InvertedPendulum bundle with tiny sizes."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def speed():
    if str(ROOT / "bench") not in sys.path:
        sys.path.append(str(ROOT / "bench"))  # the bench scripts' own modules, as when a script runs
    spec = importlib.util.spec_from_file_location("planner_speed", ROOT / "bench" / "planner_speed.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


def tiny(speed, tmp_path, **overrides):
    # No checkpoints: the torch rows run on untrained networks shaped like the ONNX graphs.
    settings = dict(task="inverted_pendulum", bundle=ROOT / "models" / "inverted_pendulum",
                    checkpoints=tmp_path / "none", out=tmp_path / "speed.json", matmul_size=64, matmul_threads=(1,),
                    batch=16, snapshots=(1, 2), budgets=((20, 3),), peer_budgets=(), warmup=0, min_repeats=2,
                    seconds=0.0, prior=None)
    return speed.Settings(**{**settings, **overrides})

def positive(value):
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_run_writes_every_section(speed, tmp_path):
    res = speed.run(tiny(speed, tmp_path))
    saved = json.loads((tmp_path / "speed.json").read_text())
    assert {"machine", "settings", "flops_per_row", "matmul_peak_gflops", "model_steps", "filtered_step_breakdown",
            "planner_latency", "peer", "observations"} <= saved.keys()
    assert positive(saved["matmul_peak_gflops"]["1"]["median_gflops"])
    names = {(r["name"], r["backend"]) for r in res["model_steps"]}
    assert {("ensemble", "ort"), ("ensemble", "torch"), ("step filter", "ort"), ("step elite_mean", "ort"),
            ("step random_elite", "ort"), ("reward 1 snap x 10 cand", "torch")} <= names
    for row in res["model_steps"]:
        assert all(positive(row[k]) for k in ("ms", "steps_per_s", "gflop_per_call", "gflops")), row
    assert len(res["planner_latency"]) == 4  # mppi and cem, filtered and not
    for row in res["planner_latency"]:
        assert all(positive(row[k]) for k in ("p50_ms", "p99_ms", "model_steps_per_s", "gflops")), row
        assert 0 <= row["deadline_miss_rate"] <= 1
    assert res["observations"] and "planner latency" in speed.report(res)


def test_peer_mppi(speed, tmp_path):
    pytest.importorskip("pytorch_mppi")  # installed by `make bench` (requirements-bench.txt), not `make test`
    s = tiny(speed, tmp_path, peer_budgets=((20, 3),))
    m = speed.load_models(s)
    obs, _ = speed.start_states(m.task, 1, seed=0)
    (row,) = speed.peer_mppi(m, s, obs[0])
    assert positive(row["pytorch_mppi_ms"]) and positive(row["ours_ms"])
    # The model's forward passes are part of a plan, and of no more time than the plan took
    assert 0 < row["ours_model_share"] <= 1 and positive(row["model_only_over_peer"])
