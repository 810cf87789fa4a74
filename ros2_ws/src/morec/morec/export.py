"""Export the ensemble, the dynamics reward and policies (behaviour and offline-trained, with the offline
policy's critic) to ONNX, one graph each, batch axis dynamic.

Each file carries a JSON metadata entry "morec" (kind, dimensions, elites, task, data fingerprint,
versions) that runtime.py checks at load time, and every export is verified on random inputs before
the file is moved into place: the models against torch, a policy against stable-baselines3's predict.
"""

from __future__ import annotations

import hashlib
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
from .task_spec import TaskSpec

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
            "trained_members": model.metadata.get("elites_of_members", model.cfg.members),
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
            "snapshots": model.num_snapshots, "width": model.disc.width, **_common_meta(model.metadata),
            "obs_low": scaler.low.tolist(), "obs_high": scaler.high.tolist()}
    act_scaler = model.disc.act_scaler
    low, high = torch.cat([scaler.low, act_scaler.low]), torch.cat([scaler.high, act_scaler.high])
    obs, act = _random_inputs((low + high) / 2, (high - low) / 2, model.obs_dim, 32)
    cands = obs.unsqueeze(1) + 0.05 * (scaler.high - scaler.low) * torch.randn(32, 10, model.obs_dim)
    _export(model, (obs, act, cands), ["obs", "act", "candidates"], ["score"],
            {"obs": {0: "batch"}, "act": {0: "batch"}, "candidates": {0: "batch", 1: "candidates"},
             "score": {0: "batch", 1: "candidates"}}, path, meta, check)
    return meta


class _PolicyGraph(nn.Module):
    """SAC's deterministic action, tanh(mean), rescaled from [-1, 1] to the action space as SB3's predict does."""

    def __init__(self, sac):
        super().__init__()
        self.actor = sac.policy.actor
        space = sac.action_space
        self.register_buffer("low", torch.as_tensor(space.low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(space.high, dtype=torch.float32))

    def forward(self, obs):
        # tanh of the mean directly: going through SB3's action distribution broadcasts its tensors,
        # which leaves the exported output with a symbolic action dimension.
        mean, _, _ = self.actor.get_action_dist_params(obs)
        return self.low + 0.5 * (torch.tanh(mean) + 1.0) * (self.high - self.low)


def export_policy(sb3_zip_path: str | Path, path: str | Path, task: TaskSpec) -> dict:
    """The deterministic actor of an SB3 SAC checkpoint as obs [batch, S] -> action [batch, A] in the task's units.

    Raises ValueError when the policy was made for other observation or action dimensions or bounds.
    """
    from .behavior import load_policy

    source = Path(sb3_zip_path)
    sac = load_policy(source)
    obs_shape, act_shape = sac.observation_space.shape, sac.action_space.shape
    if obs_shape != (task.obs_dim,) or act_shape != (task.action_dim,):
        raise ValueError(f"{source} maps observations {obs_shape} to actions {act_shape}, but task {task.name} "
                         f"({task.env_id}) has ({task.obs_dim},) -> ({task.action_dim},): "
                         f"export a policy trained on this task")
    bounds = (sac.action_space.low, sac.action_space.high)
    if not (np.allclose(bounds[0], task.action_low) and np.allclose(bounds[1], task.action_high)):
        raise ValueError(f"{source} acts within [{bounds[0].tolist()}, {bounds[1].tolist()}], but task "
                         f"{task.name}'s actuator limits are [{task.action_low.tolist()}, {task.action_high.tolist()}]")
    meta = {"kind": "policy", "obs_dim": task.obs_dim, "act_dim": task.action_dim,
            **_common_meta({"env_id": task.env_id}),
            "source": source.name, "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest()}
    graph = _PolicyGraph(sac).eval()
    obs, _ = _random_inputs(torch.zeros(task.obs_dim), torch.ones(task.obs_dim), task.obs_dim, 256)
    expected = [sac.predict(obs.numpy(), deterministic=True)[0]]
    _export(graph, (obs,), ["obs"], ["action"], {"obs": {0: "batch"}, "action": {0: "batch"}}, path, meta,
            check=True, expected=expected)
    return meta


def export_offline_policy(actor: nn.Module, critic: nn.Module, out_dir: str | Path, task: TaskSpec,
                          info: dict) -> dict:
    """An offline-trained actor (deterministic action, observation scaling inside) as `policy.onnx`, and its
    critic, min over the twin Q-networks, as `critic.onnx` (obs, act -> q [batch]); both parity-checked."""
    out_dir = Path(out_dir)
    common = {"obs_dim": task.obs_dim, "act_dim": task.action_dim, **_common_meta({"env_id": task.env_id}), **info}
    center, scale = actor.scaler.mean, actor.scaler.std
    obs, _ = _random_inputs(center, scale, task.obs_dim, 256)
    act = torch.as_tensor(task.action_low + (task.action_high - task.action_low)
                          * np.random.default_rng(0).random((256, task.action_dim)), dtype=torch.float32)
    policy_meta, critic_meta = {"kind": "policy", **common}, {"kind": "critic", **common}
    _export(actor.eval(), (obs,), ["obs"], ["action"], {"obs": {0: "batch"}, "action": {0: "batch"}},
            out_dir / "policy.onnx", policy_meta, check=True)
    _export(critic.eval(), (obs, act), ["obs", "act"], ["q"],
            {"obs": {0: "batch"}, "act": {0: "batch"}, "q": {0: "batch"}},
            out_dir / "critic.onnx", critic_meta, check=True)
    return {"policy": policy_meta, "critic": critic_meta}


def _common_meta(model_meta: dict) -> dict:
    return {"env_id": model_meta.get("env_id"), "dataset_fingerprint": model_meta.get("dataset_fingerprint"),
            "morec_version": __version__, "torch_version": torch.__version__, "onnx_version": onnx.__version__,
            "exported": time.strftime("%Y-%m-%dT%H:%M:%S")}


def _random_inputs(center: torch.Tensor, scale: torch.Tensor, obs_dim: int, batch: int):
    """Random (obs, act) around the data: `center`/`scale` cover the concatenated [obs, act] vector."""
    x = center + scale * torch.randn(batch, len(center), generator=torch.Generator().manual_seed(0))
    return x[:, :obs_dim].contiguous(), x[:, obs_dim:].contiguous()


def _export(module, args, input_names, output_names, dynamic_axes, path, meta, check: bool, expected=None) -> None:
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
            check_parity(module, args, tmp, input_names, expected)


def check_parity(module, args, path, input_names, expected=None) -> float:
    """Largest difference between ONNX Runtime's outputs and `expected` (numpy arrays; default: the torch
    module's own outputs), absolute below 1 and relative above (a critic's Q-values run into the hundreds,
    where float32 arithmetic in another order differs by more than 1e-4); raises if above PARITY_TOLERANCE."""
    from .runtime import make_session

    if expected is None:
        with torch.no_grad():
            outputs = module(*args)
        expected = [o.numpy() for o in (outputs if isinstance(outputs, tuple) else (outputs,))]
    got = make_session(path, device="cpu").run(None, {n: a.numpy() for n, a in zip(input_names, args)})
    diff = max(float((np.abs(e - g) / np.maximum(1.0, np.abs(e))).max()) for e, g in zip(expected, got))
    if diff > PARITY_TOLERANCE:
        raise RuntimeError(f"ONNX export of {path} differs from its reference by {diff:.2e} (> {PARITY_TOLERANCE})")
    return diff
