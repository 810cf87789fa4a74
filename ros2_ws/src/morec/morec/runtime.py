"""ONNX Runtime loading: sessions on CUDA when onnxruntime-gpu and a GPU are present, else CPU.

OnnxDynamics and OnnxReward implement the rollout engine's backend interfaces over the exported
graphs, OnnxPolicy runs an exported policy and OnnxCritic an offline policy's critic (the planners'
terminal value), so ROS nodes and planners need neither torch nor the training code.
On CUDA every call goes through I/O binding (SessionRunner); reduced_precision_copy writes int8 or fp16
copies of a graph. bench/runtime_speed.py measures all of it; docs/deployment.md has the numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .fileio import ModelFileError, atomic_path

DEVICES = ("auto", "cpu", "cuda")
OPTIMIZATION_LEVELS = {"disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
                       "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                       "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                       "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
PRECISIONS = ("int8", "fp16")


def make_session(path: str | Path, device: str = "auto", intra_op_threads: int = 0,
                 inter_op_threads: int = 0, optimization: str = "all",
                 parallel: bool = False) -> ort.InferenceSession:
    """Open an ONNX file; thread counts of 0 let ONNX Runtime decide. `optimization` is the graph
    optimisation level, `parallel` ORT's parallel execution mode (independent nodes at once)."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if optimization not in OPTIMIZATION_LEVELS:
        raise ValueError(f"optimization must be one of {tuple(OPTIMIZATION_LEVELS)}, got {optimization!r}")
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
    opts.graph_optimization_level = OPTIMIZATION_LEVELS[optimization]
    opts.execution_mode = ort.ExecutionMode.ORT_PARALLEL if parallel else ort.ExecutionMode.ORT_SEQUENTIAL
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as err:  # ONNX Runtime raises its own exception types for damaged files
        raise ModelFileError(f"model file {path} is not a loadable ONNX graph ({err}); "
                             f"re-export it with `morec export`") from err


def session_device(session: ort.InferenceSession) -> str:
    """'cuda' when the session runs on the CUDA execution provider, else 'cpu'."""
    return "cuda" if session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"


class SessionRunner:
    """Runs a session, plainly or through I/O binding.

    With binding, inputs are copied into OrtValues preallocated on the session's device and the graph
    writes into preallocated output OrtValues there: one run per call, one host-to-device copy per input
    and one device-to-host copy per output, with no per-run allocation or placement by ONNX Runtime. Buffers
    are kept for the last few input shapes (a controller alternates a one-state call with the planner's
    batch); a new shape costs one plain run that learns the output shapes. `io_binding=None` binds on CUDA
    only: on CPU it measured no gain (docs/deployment.md).
    """

    KEPT_SHAPES = 4

    def __init__(self, session: ort.InferenceSession, io_binding: bool | None = None):
        self.session = session
        self.device = session_device(session)
        self.bind = self.device == "cuda" if io_binding is None else io_binding
        self.bound: dict[tuple, tuple[ort.IOBinding, dict[str, ort.OrtValue], list[ort.OrtValue]]] = {}

    def __call__(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if not self.bind:
            return self.session.run(None, feeds)
        shapes = tuple(a.shape for a in feeds.values())
        if shapes not in self.bound:
            return self._bind(feeds, shapes)
        binding, inputs, outputs = self.bound[shapes]
        for name, array in feeds.items():
            inputs[name].update_inplace(np.ascontiguousarray(array))
        self.session.run_with_iobinding(binding)
        out = [v.numpy() for v in outputs]
        # A CPU OrtValue's numpy() is a view of the buffer the next call overwrites; a CUDA one's is a copy.
        return out if self.device == "cuda" else [a.copy() for a in out]

    def _bind(self, feeds: dict[str, np.ndarray], shapes: tuple) -> list[np.ndarray]:
        result = self.session.run(None, feeds)
        if len(self.bound) == self.KEPT_SHAPES:
            del self.bound[next(iter(self.bound))]  # the oldest
        binding = self.session.io_binding()
        inputs = {name: ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(a), self.device, 0)
                  for name, a in feeds.items()}
        outputs = [ort.OrtValue.ortvalue_from_shape_and_type(r.shape, r.dtype, self.device, 0) for r in result]
        for name, value in inputs.items():
            binding.bind_ortvalue_input(name, value)
        for meta, value in zip(self.session.get_outputs(), outputs):
            binding.bind_ortvalue_output(meta.name, value)
        self.bound[shapes] = binding, inputs, outputs
        return result


def reduced_precision_copy(src: str | Path, dst: str | Path, precision: str) -> Path:
    """Write a reduced-precision copy of an exported graph: 'int8' quantises the weights of every MatMul
    to int8 and their inputs at run time (ONNX Runtime's dynamic quantisation), 'fp16' stores weights and
    computes in float16. Inputs and outputs stay float32 and the morec metadata is kept (with "precision"
    added), so OnnxDynamics and the others load the copy as they load the original."""
    import onnx  # the export tools: a robot that only runs graphs needs neither of these imports
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.float16 import convert_float_to_float16

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    src, dst = Path(src), Path(dst)
    if not src.exists():
        raise ModelFileError(f"model file {src} not found")
    with atomic_path(dst, suffix=".onnx") as tmp:
        if precision == "int8":
            quantize_dynamic(src, tmp, weight_type=QuantType.QInt8)
            model = onnx.load(tmp)
        else:
            model = convert_float_to_float16(onnx.load(src), keep_io_types=True)
        for prop in model.metadata_props:
            if prop.key == "morec":
                prop.value = json.dumps({**json.loads(prop.value), "precision": precision})
        onnx.save(model, tmp)
    return dst


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
                 obs_dim: int | None = None, act_dim: int | None = None, io_binding: bool | None = None):
        self.session = make_session(path, device, intra_op_threads=threads)
        self.run = SessionRunner(self.session, io_binding)
        self.meta = read_metadata(self.session, path, "ensemble")
        check_dims(self.meta, path, obs_dim, act_dim)
        self.obs_dim, self.act_dim = self.meta["obs_dim"], self.meta["act_dim"]
        self.elites = np.asarray(self.meta["elites"], dtype=np.int64)

    def predict(self, obs, act):
        mean, std = self.run({"obs": np.asarray(obs, np.float32), "act": np.asarray(act, np.float32)})
        return mean, std


class OnnxReward:
    """RewardBackend over an exported dynamics-reward graph."""

    def __init__(self, path: str | Path, device: str = "auto", threads: int = 0,
                 obs_dim: int | None = None, act_dim: int | None = None, io_binding: bool | None = None):
        self.session = make_session(path, device, intra_op_threads=threads)
        self.run = SessionRunner(self.session, io_binding)
        self.meta = read_metadata(self.session, path, "dynamics_reward")
        check_dims(self.meta, path, obs_dim, act_dim)

    def score(self, obs, act, candidates):
        return self.run({"obs": np.asarray(obs, np.float32), "act": np.asarray(act, np.float32),
                         "candidates": np.ascontiguousarray(candidates, np.float32)})[0]


class OnnxPolicy:
    """An exported policy graph (`morec export-policy`): obs [batch, S] -> action [batch, A]."""

    def __init__(self, path: str | Path, task, device: str = "auto", threads: int = 0, io_binding: bool | None = None):
        self.session = make_session(path, device, intra_op_threads=threads)
        self.run = SessionRunner(self.session, io_binding)
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
        return self.run({self.input: np.asarray(obs, np.float32)})[0]


class OnnxCritic:
    """An offline policy's exported critic (`morec train-policy`): Q(obs [batch, S], act [batch, A]) -> [batch]."""

    def __init__(self, path: str | Path, task, device: str = "auto", threads: int = 0, io_binding: bool | None = None):
        self.session = make_session(path, device, intra_op_threads=threads)
        self.run = SessionRunner(self.session, io_binding)
        self.meta = read_metadata(self.session, path, "critic")
        check_dims(self.meta, path, task.obs_dim, task.action_dim)
        if self.meta.get("env_id") not in (None, task.env_id):
            raise ModelFileError(f"{path} is a critic for {self.meta['env_id']}, not {task.env_id}")

    def __call__(self, obs: np.ndarray, act: np.ndarray) -> np.ndarray:
        return self.run({"obs": np.asarray(obs, np.float32), "act": np.asarray(act, np.float32)})[0]
