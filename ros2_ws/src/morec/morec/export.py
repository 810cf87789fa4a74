"""Export the ensemble and the dynamics reward to ONNX, each as one graph with a dynamic batch axis.

Each file carries a JSON metadata entry "morec" (kind, dimensions, elites, task, data fingerprint,
versions) that runtime.py checks at load time, and every export is verified against torch on
random inputs before the file is moved into place.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from . import __version__
from .dynamics_reward import DynamicsReward
from .ensemble import EnsembleDynamics
from .fileio import atomic_path

PARITY_TOLERANCE = 1e-4


class _EnsembleGraph(nn.Module):
    def __init__(self, model: EnsembleDynamics):
        super().__init__()
        self.model = model

    def forward(self, obs, act):
        return self.model.predict(obs, act)


def export_ensemble(model: EnsembleDynamics, path: str | Path, check: bool = True) -> dict:
    model = model.eval()
    meta = {"kind": "ensemble", "obs_dim": model.obs_dim, "act_dim": model.act_dim,
            "members": model.cfg.members, "elites": model.elites.tolist(),
            "hidden": list(model.cfg.hidden), **_common_meta(model.metadata),
            "input_mean": model.input_scaler.mean.tolist(), "input_std": model.input_scaler.std.tolist()}
    obs, act = _random_inputs(model.input_scaler.mean, model.input_scaler.std, model.obs_dim, 64)
    _export(_EnsembleGraph(model), (obs, act), ["obs", "act"], ["mean", "std"],
            {"obs": {0: "batch"}, "act": {0: "batch"}, "mean": {1: "batch"}, "std": {1: "batch"}},
            path, meta, check)
    return meta


def export_dynamics_reward(model: DynamicsReward, path: str | Path, check: bool = True) -> dict:
    model = model.eval()
    scaler = model.disc.obs_scaler
    meta = {"kind": "dynamics_reward", "obs_dim": model.obs_dim, "act_dim": model.act_dim,
            "snapshots": model.num_snapshots, **_common_meta(model.metadata),
            "obs_low": scaler.low.tolist(), "obs_high": scaler.high.tolist()}
    act_scaler = model.disc.act_scaler
    low, high = torch.cat([scaler.low, act_scaler.low]), torch.cat([scaler.high, act_scaler.high])
    obs, act = _random_inputs((low + high) / 2, (high - low) / 2, model.obs_dim, 32)
    cands = obs.unsqueeze(1) + 0.05 * (scaler.high - scaler.low) * torch.randn(32, 10, model.obs_dim)
    _export(model, (obs, act, cands), ["obs", "act", "candidates"], ["score"],
            {"obs": {0: "batch"}, "act": {0: "batch"}, "candidates": {0: "batch", 1: "candidates"},
             "score": {0: "batch", 1: "candidates"}}, path, meta, check)
    return meta


def _common_meta(model_meta: dict) -> dict:
    return {"env_id": model_meta.get("env_id"), "dataset_fingerprint": model_meta.get("dataset_fingerprint"),
            "morec_version": __version__, "torch_version": torch.__version__, "onnx_version": onnx.__version__,
            "exported": time.strftime("%Y-%m-%dT%H:%M:%S")}


def _random_inputs(center: torch.Tensor, scale: torch.Tensor, obs_dim: int, batch: int):
    """Random (obs, act) around the data: `center`/`scale` cover the concatenated [obs, act] vector."""
    x = center + scale * torch.randn(batch, len(center), generator=torch.Generator().manual_seed(0))
    return x[:, :obs_dim].contiguous(), x[:, obs_dim:].contiguous()


def _export(module, args, input_names, output_names, dynamic_axes, path, meta, check: bool) -> None:
    path = Path(path)
    with atomic_path(path, suffix=".onnx") as tmp:
        with warnings.catch_warnings():
            # The TorchScript-based exporter handles these small static graphs with dynamic axes directly.
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, str(tmp), input_names=input_names, output_names=output_names,
                              dynamic_axes=dynamic_axes, opset_version=17, dynamo=False)
        proto = onnx.load(str(tmp))
        onnx.helper.set_model_props(proto, {"morec": json.dumps(meta)})
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        if check:
            check_parity(module, args, tmp, input_names)


def check_parity(module, args, path, input_names) -> float:
    """Max abs difference between torch and ONNX Runtime outputs; raises if above PARITY_TOLERANCE."""
    from .runtime import make_session

    with torch.no_grad():
        expected = module(*args)
    expected = expected if isinstance(expected, tuple) else (expected,)
    got = make_session(path, device="cpu").run(None, {n: a.numpy() for n, a in zip(input_names, args)})
    diff = max(float(np.abs(e.numpy() - g).max()) for e, g in zip(expected, got))
    if diff > PARITY_TOLERANCE:
        raise RuntimeError(f"ONNX export of {path} differs from torch by {diff:.2e} (> {PARITY_TOLERANCE})")
    return diff
