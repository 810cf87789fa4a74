"""ONNX Runtime layer on the shipped InvertedPendulum bundle: device choice, I/O binding, reduced precision."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from morec.diagnostics import scaled_rmse
from morec.runtime import (ModelFileError, OnnxDynamics, OnnxReward, SessionRunner, make_session,
                           reduced_precision_copy)

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
