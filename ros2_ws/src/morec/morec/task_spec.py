"""Task specs: the YAML files under sim/ that tie /joint_states, commands and the MuJoCo tasks together.

A spec maps a JointState (MJCF joint names, any order) to the Gymnasium observation vector, names
the actuators in model order with their limits, gives the control period, the reward on
(obs, action, next_obs) for MPC, the termination rule and the robot variants: "nominal" is plain
Gymnasium, others perturb the physics (mass, friction, gear) and the interface (sensor noise,
actuation delay) so the simulator can stand in for a real robot.

Reading a spec needs numpy and yaml only (a controller on a robot has no MuJoCo); building the
simulator imports gymnasium and mujoco when asked.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import yaml

from .share import share_dir

SIM_DIR_ENV = "MOREC_SIM_DIR"


class TaskSpecError(ValueError):
    """A task spec file is missing, malformed or disagrees with its MuJoCo model."""


@dataclass(frozen=True)
class Actuator:
    name: str
    joint: str
    low: float
    high: float


@dataclass(frozen=True)
class HealthyRange:
    """Observation elements `indices` must stay within (low, high) (closed if inclusive)."""

    indices: tuple[int, ...]
    low: float
    high: float
    inclusive: bool


@dataclass(frozen=True)
class Variant:
    """A robot variant: physics scales applied to the MuJoCo model, noise and delay applied by the sim."""

    name: str
    body_mass_scale: float = 1.0  # masses and inertias (uniform density change)
    geom_friction_scale: float = 1.0  # all friction coefficients of all geoms
    actuator_gear_scale: float = 1.0  # actuator strength
    sensor_noise_std: float = 0.0  # Gaussian noise on published joint positions and velocities
    action_delay: int = 0  # control periods between receiving a command and applying it

    def __post_init__(self):
        for key in ("body_mass_scale", "geom_friction_scale", "actuator_gear_scale", "sensor_noise_std"):
            value = getattr(self, key)
            valid = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not valid or value < 0 or (value == 0 and key != "sensor_noise_std"):
                least = ">= 0" if key == "sensor_noise_std" else "> 0"
                raise TaskSpecError(f"variant {self.name!r}: {key} must be a number {least}, got {value!r}")
            object.__setattr__(self, key, float(value))  # YAML "1" and "1.0" mean the same
        delay = self.action_delay
        if isinstance(delay, bool) or not isinstance(delay, int) or delay < 0:
            raise TaskSpecError(f"variant {self.name!r}: action_delay must be an integer >= 0, got {delay!r}")

    @property
    def nominal_physics(self) -> bool:
        return self.body_mass_scale == self.geom_friction_scale == self.actuator_gear_scale == 1.0

    def replace(self, **overrides) -> Variant:
        return dataclasses.replace(self, **overrides)


VARIANT_KEYS = tuple(f.name for f in dataclasses.fields(Variant) if f.name != "name")


@dataclass(frozen=True)
class TaskSpec:
    name: str
    env_id: str
    control_period: float
    joints: tuple[str, ...]  # MJCF joints in model order
    obs_positions: tuple[str, ...]
    obs_velocities: tuple[str, ...]
    velocity_clip: float | None
    actuators: tuple[Actuator, ...]
    alive_reward: float
    forward_joint: str | None
    forward_weight: float
    control_cost: float
    require_finite: bool
    healthy: tuple[HealthyRange, ...]
    variants: Mapping[str, Variant]
    path: Path
    # D4RL normalisation: score = 100 * (return - random) / (expert - random); None where D4RL has none.
    d4rl_random: float | None = None
    d4rl_expert: float | None = None

    def normalized_score(self, episode_return: float) -> float | None:
        if self.d4rl_random is None or self.d4rl_expert is None:
            return None
        return 100.0 * (episode_return - self.d4rl_random) / (self.d4rl_expert - self.d4rl_random)

    @property
    def obs_dim(self) -> int:
        return len(self.obs_positions) + len(self.obs_velocities)

    @property
    def action_dim(self) -> int:
        return len(self.actuators)

    @property
    def action_low(self) -> np.ndarray:
        return np.array([a.low for a in self.actuators])

    @property
    def action_high(self) -> np.ndarray:
        return np.array([a.high for a in self.actuators])

    def variant(self, name: str) -> Variant:
        try:
            return self.variants[name]
        except KeyError:
            known = sorted(self.variants)
            raise TaskSpecError(f"task {self.name!r} has no variant {name!r}; variants: {known}") from None

    def observation_from_joint_state(
        self, names: Sequence[str], position: Sequence[float], velocity: Sequence[float]
    ) -> np.ndarray:
        """The observation vector from JointState fields, joints matched by name in any order."""
        names = list(names)
        if len(position) != len(names) or (self.obs_velocities and len(velocity) != len(names)):
            raise ValueError(
                f"JointState has {len(names)} names but {len(position)} positions and {len(velocity)} velocities"
            )
        index = {name: i for i, name in enumerate(names)}
        missing = sorted(set(self.obs_positions + self.obs_velocities) - index.keys())
        if missing:
            raise ValueError(f"JointState lacks joints {missing} needed by task {self.name!r}; it has {names}")
        pos = np.asarray(position, dtype=np.float64)[[index[j] for j in self.obs_positions]]
        vel = np.asarray(velocity, dtype=np.float64)[[index[j] for j in self.obs_velocities]]
        if self.velocity_clip is not None:
            vel = np.clip(vel, -self.velocity_clip, self.velocity_clip)
        return np.concatenate([pos, vel])

    def is_terminal(self, next_obs: np.ndarray) -> np.ndarray:
        """Termination for a batch of next observations [..., obs_dim]."""
        next_obs = np.asarray(next_obs, dtype=np.float64)
        healthy = np.ones(next_obs.shape[:-1], dtype=bool)
        if self.require_finite:
            healthy &= np.all(np.isfinite(next_obs), axis=-1)
        for r in self.healthy:
            x = next_obs[..., list(r.indices)]
            inside = (x >= r.low) & (x <= r.high) if r.inclusive else (x > r.low) & (x < r.high)
            healthy &= np.all(inside, axis=-1)
        return ~healthy

    def reward(self, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        """Reward of a batch of transitions (obs [..., S], action [..., A], next_obs [..., S]); MPC cost = -reward.

        `obs` is part of the signature for every task although the Gymnasium v5 rewards only need
        the action and the next observation.
        """
        action = np.asarray(action, dtype=np.float64)
        next_obs = np.asarray(next_obs, dtype=np.float64)
        r = -self.control_cost * np.sum(action**2, axis=-1)
        if self.forward_joint is not None:
            velocity = next_obs[..., len(self.obs_positions) + self.obs_velocities.index(self.forward_joint)]
            r = r + self.forward_weight * velocity
        if self.alive_reward:
            r = r + self.alive_reward * ~self.is_terminal(next_obs)
        return r

    def check_model(self, model) -> None:
        """Raise TaskSpecError unless the MuJoCo model has this spec's joints and actuators, in order."""
        import mujoco

        def name_of(kind, i):
            return mujoco.mj_id2name(model, kind, i)

        problems = []
        model_joints = [name_of(mujoco.mjtObj.mjOBJ_JOINT, j) for j in range(model.njnt)]
        if model_joints != list(self.joints):
            problems.append(f"joints are {model_joints}, spec says {list(self.joints)}")
        one_dof = (mujoco.mjtJoint.mjJNT_SLIDE, mujoco.mjtJoint.mjJNT_HINGE)
        multi = [model_joints[j] for j in range(model.njnt) if model.jnt_type[j] not in one_dof]
        if multi:
            problems.append(f"joints {multi} are not 1-dof (slide/hinge), JointState cannot carry them")
        if model.nu != len(self.actuators):
            problems.append(f"model has {model.nu} actuators, spec lists {len(self.actuators)}")
        for i, act in enumerate(self.actuators[: model.nu]):
            driven = name_of(mujoco.mjtObj.mjOBJ_JOINT, model.actuator_trnid[i, 0])
            model_name = name_of(mujoco.mjtObj.mjOBJ_ACTUATOR, i)
            if driven != act.joint:
                problems.append(f"actuator {i} drives joint {driven!r}, spec says {act.joint!r}")
            if model_name and model_name != act.name:
                problems.append(f"actuator {i} is named {model_name!r}, spec says {act.name!r}")
            if model.actuator_ctrllimited[i] and not np.allclose(model.actuator_ctrlrange[i], [act.low, act.high]):
                problems.append(f"actuator {act.name!r} ctrlrange is {model.actuator_ctrlrange[i].tolist()}")
        if problems:
            raise TaskSpecError(f"{self.path}: disagrees with the {self.env_id} model: " + "; ".join(problems))

    def make_env(self, variant: str | Variant = "nominal", **gym_kwargs):
        """gymnasium.make(env_id) with the variant's physics scales applied to its MuJoCo model in place.

        The nominal variant is untouched plain Gymnasium. Sensor noise and actuation delay are not
        part of the env: SimulatedRobot applies them.
        """
        import gymnasium as gym
        import mujoco

        if isinstance(variant, str):
            variant = self.variant(variant)
        env = gym.make(self.env_id, **gym_kwargs)
        sim = env.unwrapped
        self.check_model(sim.model)
        if not math.isclose(sim.dt, self.control_period, rel_tol=1e-9):
            raise TaskSpecError(f"{self.path}: control_period {self.control_period} but {self.env_id} dt is {sim.dt}")
        if not variant.nominal_physics:
            model = sim.model
            model.body_mass[:] *= variant.body_mass_scale
            model.body_inertia[:] *= variant.body_mass_scale
            model.geom_friction[:] *= variant.geom_friction_scale
            model.actuator_gear[:] *= variant.actuator_gear_scale
            # Recompute the constants MuJoCo derives from masses and gears (subtree masses,
            # inverse weights used by the constraint solver, actuator moments at qpos0).
            mujoco.mj_setConst(model, sim.data)
        return env


class SimulatedRobot:
    """The MuJoCo task as the sim node drives it, at joint level.

    Commands are clipped to the actuator limits and delayed by the variant's action_delay; joint
    positions and velocities carry its sensor noise. An episode ends on the task's termination or
    after `episode_length` steps; the caller decides when to reset.
    """

    def __init__(self, spec: TaskSpec, variant: Variant, seed: int, episode_length: int | None = None):
        import mujoco

        self.spec = spec
        self.variant = variant
        self.env = spec.make_env(variant, max_episode_steps=episode_length)
        model = self.env.unwrapped.model
        ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in spec.joints]
        self._qpos_adr = model.jnt_qposadr[ids]
        self._dof_adr = model.jnt_dofadr[ids]
        self._seed = seed
        self._noise = np.random.default_rng(seed)
        self._pending: deque[np.ndarray] = deque()
        self.episode = 0
        self.total_steps = 0
        self.reset()

    def reset(self) -> None:
        # Seed the first episode only: later episodes continue the env's generator, so a run is
        # reproducible from its seed alone.
        self.env.reset(seed=self._seed if self.episode == 0 else None)
        self.episode += 1
        self.episode_steps = 0
        self.episode_return = 0.0
        self.done = False
        zero = np.zeros(self.spec.action_dim)
        self._pending = deque([zero] * self.variant.action_delay)

    def step(self, command: np.ndarray) -> float:
        """Advance one control period with `command` (one value per actuator); return the reward."""
        if self.done:
            raise RuntimeError("episode is over: reset() first")
        self._pending.append(np.clip(command, self.spec.action_low, self.spec.action_high))
        _, reward, terminated, truncated, _ = self.env.step(self._pending.popleft())
        self.total_steps += 1
        self.episode_steps += 1
        self.episode_return += float(reward)
        self.done = bool(terminated or truncated)
        return float(reward)

    def joint_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(position, velocity, effort) of spec.joints; effort is the actuator force on each joint."""
        data = self.env.unwrapped.data
        position = data.qpos[self._qpos_adr].copy()
        velocity = data.qvel[self._dof_adr].copy()
        effort = data.qfrc_actuator[self._dof_adr].copy()
        if self.variant.sensor_noise_std > 0:
            position += self._noise.normal(0.0, self.variant.sensor_noise_std, position.shape)
            velocity += self._noise.normal(0.0, self.variant.sensor_noise_std, velocity.shape)
        return position, velocity, effort

    def close(self) -> None:
        self.env.close()


def sim_dir() -> Path:
    """Where task specs live: $MOREC_SIM_DIR, else sim/ among the package's shipped files."""
    if os.environ.get(SIM_DIR_ENV):
        return Path(os.environ[SIM_DIR_ENV])
    return share_dir("morec") / "sim"


def available_tasks() -> list[str]:
    return sorted(p.stem for p in sim_dir().glob("*.yaml"))


def load_task_spec(name_or_path: str | os.PathLike) -> TaskSpec:
    """Load a spec by task name ("halfcheetah"), Gymnasium id ("HalfCheetah-v5") or YAML path."""
    text = str(name_or_path)
    path = Path(text)
    if not (text.endswith((".yaml", ".yml")) or os.sep in text):
        directory = sim_dir()
        if not directory.is_dir():
            raise TaskSpecError(f"task spec directory {directory} does not exist; set {SIM_DIR_ENV}")
        path = directory / f"{text}.yaml"
        if not path.exists():
            by_env_id = [p for p in sorted(directory.glob("*.yaml")) if _read_yaml(p).get("env_id") == text]
            if not by_env_id:
                raise TaskSpecError(f"unknown task {text!r}; specs in {directory}: {available_tasks()}")
            path = by_env_id[0]
    if not path.exists():
        raise TaskSpecError(f"task spec {path} does not exist")
    return _parse(_read_yaml(path), path)


def _read_yaml(path: Path) -> dict:
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise TaskSpecError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(doc, dict):
        raise TaskSpecError(f"{path}: expected a mapping at the top level")
    return doc


class _Reader:
    """Typed access to one mapping of a spec file; errors name the file and the key path."""

    def __init__(self, doc: Any, where: str, path: Path):
        if not isinstance(doc, dict):
            raise TaskSpecError(f"{path}: {where or 'top level'} must be a mapping, got {doc!r}")
        self.doc, self.where, self.path = doc, where, path

    def error(self, key: str, message: str) -> TaskSpecError:
        return TaskSpecError(f"{self.path}: {self.where + '.' if self.where else ''}{key}: {message}")

    def only(self, *allowed: str) -> None:
        unknown = sorted(set(self.doc) - set(allowed))
        if unknown:
            raise self.error(unknown[0], f"unknown key (allowed: {', '.join(allowed)})")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.doc:
            if default is ...:
                raise self.error(key, "missing")
            return default
        value = self.doc[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise self.error(key, f"expected {getattr(kind, '__name__', kind)}, got {value!r}")
        return value

    def names(self, key: str, allowed: Sequence[str] | None = None) -> tuple[str, ...]:
        value = self.get(key, list)
        if not all(isinstance(v, str) for v in value) or len(set(value)) != len(value):
            raise self.error(key, f"expected a list of distinct names, got {value!r}")
        unknown = [v for v in value if allowed is not None and v not in allowed]
        if unknown:
            raise self.error(key, f"{unknown} are not in joints {list(allowed)}")
        return tuple(value)

    def sub(self, key: str, default: Any = ...) -> _Reader:
        return _Reader(self.get(key, dict, default), f"{self.where}.{key}".lstrip("."), self.path)


def _parse(doc: dict, path: Path) -> TaskSpec:
    top = _Reader(doc, "", path)
    top.only("name", "env_id", "control_period", "joints", "observation", "actuators", "reward", "termination",
             "variants", "d4rl_score")
    joints = top.names("joints")

    obs = top.sub("observation")
    obs.only("positions", "velocities", "velocity_clip")
    positions, velocities = obs.names("positions", joints), obs.names("velocities", joints)
    velocity_clip = obs.get("velocity_clip", (float, type(None)), None)

    actuators = []
    for i, item in enumerate(top.get("actuators", list)):
        a = _Reader(item, f"actuators[{i}]", path)
        a.only("name", "joint", "low", "high")
        act = Actuator(a.get("name", str), a.get("joint", str), a.get("low", float), a.get("high", float))
        if act.joint not in joints:
            raise a.error("joint", f"{act.joint!r} is not in joints {list(joints)}")
        if not act.low < act.high:
            raise a.error("high", f"must exceed low ({act.low} >= {act.high})")
        actuators.append(act)
    if not actuators:
        raise top.error("actuators", "at least one actuator is needed")

    reward = top.sub("reward")
    reward.only("alive", "forward_velocity", "control_cost")
    forward_joint, forward_weight = None, 0.0
    if "forward_velocity" in reward.doc:
        fwd = reward.sub("forward_velocity")
        fwd.only("joint", "weight")
        forward_joint, forward_weight = fwd.get("joint", str), fwd.get("weight", float, 1.0)
        if forward_joint not in velocities:
            raise fwd.error("joint", f"{forward_joint!r} has no velocity in the observation")

    term = top.sub("termination")
    term.only("require_finite", "healthy")
    healthy = tuple(_healthy_range(item, i, positions, velocities, path)
                    for i, item in enumerate(term.get("healthy", list, [])))

    variants = {}
    for name, item in top.get("variants", dict).items():
        v = _Reader(item if item is not None else {}, f"variants.{name}", path)
        v.only(*VARIANT_KEYS)
        try:
            variants[name] = Variant(str(name), **v.doc)
        except TaskSpecError as e:
            raise TaskSpecError(f"{path}: {e}") from None
    if "nominal" not in variants:
        raise top.error("variants", "a 'nominal' variant is required")

    d4rl = top.sub("d4rl_score", {})
    d4rl.only("random", "expert")

    control_period = top.get("control_period", float)
    if not control_period > 0:
        raise top.error("control_period", f"must be positive, got {control_period}")
    return TaskSpec(
        name=top.get("name", str),
        env_id=top.get("env_id", str),
        control_period=control_period,
        joints=joints,
        obs_positions=positions,
        obs_velocities=velocities,
        velocity_clip=velocity_clip,
        actuators=tuple(actuators),
        alive_reward=reward.get("alive", float, 0.0),
        forward_joint=forward_joint,
        forward_weight=forward_weight,
        control_cost=reward.get("control_cost", float, 0.0),
        require_finite=term.get("require_finite", bool, False),
        healthy=healthy,
        variants=variants,
        path=path,
        d4rl_random=d4rl.get("random", float, None),
        d4rl_expert=d4rl.get("expert", float, None),
    )


def _healthy_range(item: Any, i: int, positions: tuple[str, ...], velocities: tuple[str, ...],
                   path: Path) -> HealthyRange:
    r = _Reader(item, f"termination.healthy[{i}]", path)
    r.only("position", "velocity", "index", "low", "high", "inclusive")
    selectors = [k for k in ("position", "velocity", "index") if k in r.doc]
    if len(selectors) != 1:
        raise r.error("position", "give exactly one of position: <joint>, velocity: <joint>, "
                                  "index: <i or [start, stop]>")
    key = selectors[0]
    dim = len(positions) + len(velocities)
    if key == "position":
        joint = r.get(key, str)
        if joint not in positions:
            raise r.error(key, f"{joint!r} has no position in the observation")
        indices = (positions.index(joint),)
    elif key == "velocity":
        joint = r.get(key, str)
        if joint not in velocities:
            raise r.error(key, f"{joint!r} has no velocity in the observation")
        indices = (len(positions) + velocities.index(joint),)
    else:
        value = r.get(key, (int, list))
        bounds = [value, value + 1] if isinstance(value, int) else value
        if len(bounds) != 2 or not all(isinstance(b, int) for b in bounds) or not 0 <= bounds[0] < bounds[1] <= dim:
            raise r.error(key, f"expected an index or [start, stop] within the {dim}-dim observation, got {value!r}")
        indices = tuple(range(*bounds))
    low, high = r.get("low", float, -math.inf), r.get("high", float, math.inf)
    if not low < high:
        raise r.error("high", f"must exceed low ({low} >= {high})")
    return HealthyRange(indices, low, high, r.get("inclusive", bool, False))
