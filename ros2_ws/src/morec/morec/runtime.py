"""ONNX Runtime loading: sessions on CUDA when onnxruntime-gpu and a GPU are present, else CPU.

OnnxDynamics and OnnxReward implement the rollout engine's backend interfaces over the exported
graphs, OnnxPolicy runs an exported policy and OnnxCritic an offline policy's critic (the planners'
terminal value), so ROS nodes and planners need neither torch nor the training code.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort

DEVICES = ("auto", "cpu", "cuda")


class ModelFileError(RuntimeError):
    """A model file is missing, unreadable or does not fit the task."""


def make_session(path: str | Path, device: str = "auto", intra_op_threads: int = 0,
                 inter_op_threads: int = 0) -> ort.InferenceSession:
    """Open an ONNX file; thread counts of 0 let ONNX Runtime decide."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file {path} not found: export one with `morec export` "
                             f"or point the parameter at a bundle under models/")
    available = ort.get_available_providers()
    if device == "cuda" and "CUDAExecutionProvider" not in available:
        raise ModelFileError(f"device 'cuda' asked for but ONNX Runtime offers only {available}: "
                             f"install onnxruntime-gpu on a machine with a GPU, or use device 'auto'/'cpu'")
    providers = ["CPUExecutionProvider"]
    if device in ("auto", "cuda") and "CUDAExecutionProvider" in available:
        providers.insert(0, "CUDAExecutionProvider")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = intra_op_threads
    opts.inter_op_num_threads = inter_op_threads
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as err:  # ONNX Runtime raises its own exception types for damaged files
        raise ModelFileError(f"model file {path} is not a loadable ONNX graph ({err}); "
                             f"re-export it with `morec export`") from err


def read_metadata(session: ort.InferenceSession, path: str | Path, kind: str) -> dict:
    raw = session.get_modelmeta().custom_metadata_map.get("morec")
    if raw is None:
        raise ModelFileError(f"{path} has no morec metadata: export it with `morec export`")
    meta = json.loads(raw)
    if meta.get("kind") != kind:
        raise ModelFileError(f"{path} holds a {meta.get('kind')!r} model, expected {kind!r}")
    return meta


def check_dims(meta: dict, path, obs_dim: int | None, act_dim: int | None) -> None:
    for name, want in (("obs_dim", obs_dim), ("act_dim", act_dim)):
        if want is not None and meta[name] != want:
            raise ModelFileError(f"{path} was trained for {name}={meta[name]} but the task has {name}={want}: "
                                 f"use the bundle made for this task")


class OnnxDynamics:
    """DynamicsBackend over an exported ensemble graph."""

    def __init__(self, path: str | Path, device: str = "auto", threads: int = 0,
                 obs_dim: int | None = None, act_dim: int | None = None):
        self.session = make_session(path, device, intra_op_threads=threads)
        self.meta = read_metadata(self.session, path, "ensemble")
        check_dims(self.meta, path, obs_dim, act_dim)
        self.obs_dim, self.act_dim = self.meta["obs_dim"], self.meta["act_dim"]
        self.elites = np.asarray(self.meta["elites"], dtype=np.int64)

    def predict(self, obs, act):
        mean, std = self.session.run(None, {"obs": np.asarray(obs, np.float32), "act": np.asarray(act, np.float32)})
        return mean, std


class OnnxReward:
    """RewardBackend over an exported dynamics-reward graph."""

    def __init__(self, path: str | Path, device: str = "auto", threads: int = 0,
                 obs_dim: int | None = None, act_dim: int | None = None):
        self.session = make_session(path, device, intra_op_threads=threads)
        self.meta = read_metadata(self.session, path, "dynamics_reward")
        check_dims(self.meta, path, obs_dim, act_dim)

    def score(self, obs, act, candidates):
        return self.session.run(None, {"obs": np.asarray(obs, np.float32), "act": np.asarray(act, np.float32),
                                       "candidates": np.ascontiguousarray(candidates, np.float32)})[0]


class OnnxPolicy:
    """An exported policy graph (`morec export-policy`): obs [batch, S] -> action [batch, A]."""

    def __init__(self, path: str | Path, task, device: str = "auto", threads: int = 0):
        self.session = make_session(path, device, intra_op_threads=threads)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shapes = (inputs[0].shape[-1], outputs[0].shape[-1])
        if len(inputs) != 1 or shapes != (task.obs_dim, task.action_dim):
            raise ModelFileError(
                f"{path} maps inputs {[i.shape for i in inputs]} to {outputs[0].shape}, but task {task.name} needs "
                f"obs [batch, {task.obs_dim}] -> action [batch, {task.action_dim}]: export a policy for this task")
        # Files from `morec export-policy` name their task; same-shaped tasks (Hopper vs Walker2d) differ only there.
        raw = self.session.get_modelmeta().custom_metadata_map.get("morec")
        env_id = json.loads(raw).get("env_id") if raw else None
        if env_id not in (None, task.env_id):
            raise ModelFileError(f"{path} is a policy for {env_id}, not {task.env_id}: export a policy for this task")
        self.input = inputs[0].name

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: np.asarray(obs, np.float32)})[0]


class OnnxCritic:
    """An offline policy's exported critic (`morec train-policy`): Q(obs [batch, S], act [batch, A]) -> [batch]."""

    def __init__(self, path: str | Path, task, device: str = "auto", threads: int = 0):
        self.session = make_session(path, device, intra_op_threads=threads)
        self.meta = read_metadata(self.session, path, "critic")
        check_dims(self.meta, path, task.obs_dim, task.action_dim)
        if self.meta.get("env_id") not in (None, task.env_id):
            raise ModelFileError(f"{path} is a critic for {self.meta['env_id']}, not {task.env_id}")

    def __call__(self, obs: np.ndarray, act: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"obs": np.asarray(obs, np.float32), "act": np.asarray(act, np.float32)})[0]
