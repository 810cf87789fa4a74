"""ONNX Runtime layer on the shipped InvertedPendulum bundle: device choice, I/O binding, reduced precision."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from morec.diagnostics import scaled_rmse
from morec.runtime import ModelFileError, OnnxDynamics, OnnxReward, SessionRunner, make_session, reduced_precision_copy

BUNDLE = Path(__file__).resolve().parents[1] / "models" / "inverted_pendulum"
NO_CUDA = "CUDAExecutionProvider" not in ort.get_available_providers()


@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA: 'auto' picks it")
def test_auto_falls_back_to_cpu_without_binding():
    model = OnnxDynamics(BUNDLE / "ensemble.onnx", "auto")
    assert model.session.get_providers() == ["CPUExecutionProvider"]
    assert model.run.device == "cpu" and not model.run.bind
    with pytest.raises(ModelFileError, match="device 'cuda' asked for.*install onnxruntime-gpu"):
        OnnxDynamics(BUNDLE / "ensemble.onnx", "cuda")


def test_bound_runs_equal_plain_runs_across_batch_sizes():
    rng = np.random.default_rng(0)
    plain = OnnxDynamics(BUNDLE / "ensemble.onnx", "cpu", 1), OnnxReward(BUNDLE / "dynamics_reward.onnx", "cpu", 1)
    bound = (OnnxDynamics(BUNDLE / "ensemble.onnx", "cpu", 1, io_binding=True),
             OnnxReward(BUNDLE / "dynamics_reward.onnx", "cpu", 1, io_binding=True))
    kept = None
    # More shapes than the runner keeps, and back to evicted ones: rebinding must not change a result.
    for b in (3, 7, 3, 1, 9, 5, 11, 3, 7, 7):
        obs = rng.standard_normal((b, 4), dtype=np.float32)
        act = rng.uniform(-3, 3, (b, 1)).astype(np.float32)
        cands = obs[:, None] + 0.1 * rng.standard_normal((b, 10, 4), dtype=np.float32)
        for got, want in zip(bound[0].predict(obs, act), plain[0].predict(obs, act)):
            np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(bound[1].score(obs, act, cands), plain[1].score(obs, act, cands))
        if kept is None:
            kept = bound[0].predict(obs, act)[0], plain[0].predict(obs, act)[0]
    assert len(bound[0].run.bound) == SessionRunner.KEPT_SHAPES
    # Results are the caller's: later calls into the same preallocated buffers leave them alone.
    np.testing.assert_array_equal(*kept)


def test_bad_options_are_refused_in_one_line(tmp_path):
    with pytest.raises(ValueError, match="optimization must be one of"):
        make_session(BUNDLE / "ensemble.onnx", "cpu", optimization="fast")
    with pytest.raises(ValueError, match="precision must be one of"):
        reduced_precision_copy(BUNDLE / "ensemble.onnx", tmp_path / "x.onnx", "int4")
    with pytest.raises(ModelFileError, match="not found"):
        reduced_precision_copy(tmp_path / "missing.onnx", tmp_path / "x.onnx", "int8")


def test_reduced_precision_copies_load_and_stay_close(tmp_path, pendulum_eval_data):
    data = pendulum_eval_data
    ref = OnnxDynamics(BUNDLE / "ensemble.onnx", "cpu", 1, obs_dim=4, act_dim=1)
    scale = np.asarray(ref.meta["input_std"][:4], np.float32)

    def next_obs(model):
        mean, _ = model.predict(data.observations, data.actions)
        return mean[model.elites].mean(0)[:, :4]

    expected = next_obs(ref)
    fp32_error = scaled_rmse(expected, data.next_observations, scale).mean()
    # Measured: fp16 0.0004 and int8 0.047 from fp32, whose own error is 0.040 (scaled RMSE, 1000 states).
    bounds = {"fp16": 0.005, "int8": 0.1}
    for precision, bound in bounds.items():
        path = reduced_precision_copy(BUNDLE / "ensemble.onnx", tmp_path / f"ensemble_{precision}.onnx", precision)
        model = OnnxDynamics(path, "cpu", 1, obs_dim=4, act_dim=1)
        assert model.meta["precision"] == precision and model.meta["elites"] == ref.meta["elites"]
        got = next_obs(model)
        assert got.dtype == np.float32
        assert scaled_rmse(got, expected, scale).mean() < bound, precision
        assert scaled_rmse(got, data.next_observations, scale).mean() < fp32_error + bound, precision
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ensemble_fp16.onnx", "ensemble_int8.onnx"]  # no temp files


def test_runtime_benchmark_runs_end_to_end(tmp_path, pendulum_eval_data):
    spec = importlib.util.spec_from_file_location("runtime_speed", BUNDLE.parents[1] / "bench" / "runtime_speed.py")
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # dataclasses look their module up while the file executes
    spec.loader.exec_module(bench)
    data = pendulum_eval_data.save(tmp_path / "eval.npz")
    res = bench.main(["--bundle", str(BUNDLE), "--data", str(data), "--samples", "8", "--seconds", "0",
                      "--states", "200", "--out", str(tmp_path / "speed.json")])
    assert json.loads((tmp_path / "speed.json").read_text())["cpu_tuning"] == res["cpu_tuning"]
    assert len(res["cpu_tuning"]) == 2 * len(bench.CPU_VARIANTS)
    assert all(r["median_ms"] > 0 and r["calls"] > 0 for r in res["cpu_tuning"] + res["precision"]["latency"])
    assert res["cuda_binding"] or "cuda_skipped" in res
    assert res["precision"]["error"]["fp32"]["rmse_vs_fp32"] == 0
    assert 0 < res["precision"]["error"]["fp16"]["rmse_vs_fp32"] < res["precision"]["error"]["int8"]["rmse_vs_fp32"]
