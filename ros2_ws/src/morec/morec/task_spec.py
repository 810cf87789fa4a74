"""Task specs: the YAML files under sim/ that tie /joint_states, odometry, commands and the MuJoCo tasks together.

A spec maps a JointState (MJCF joint names, any order) to the Gymnasium observation vector, names
the actuators in model order with their limits, gives the control period, the reward on
(obs, action, next_obs) for MPC, the termination rule and the robot variants: "nominal" is plain
Gymnasium, others perturb the physics (mass, friction, gear) and the interface (sensor noise,
actuation delay) so the simulator can stand in for a real robot. A `base:` section takes the
entries of the floating-base joints (a real robot has no rootx/rootz/rooty on /joint_states) from
nav_msgs/Odometry instead; `extends:` reuses another spec's top-level sections.

The file layout is checked by a pydantic schema (types, unknown keys, each error naming its key
path); cross-references (joints named in the observation, actuators, reward, termination, base)
are checked after it. Reading a spec needs numpy, yaml and pydantic only (a controller on a robot
has no MuJoCo); the simulator lives in morec.simulator.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, Sequence

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from .share import share_dir

SIM_DIR_ENV = "MOREC_SIM_DIR"
# What a `base:` entry may read from nav_msgs/Odometry: the pose (odometry frame), the twist as the
# message carries it (child = base frame) or rotated into the odometry frame (world_*).
BASE_FIELDS = ("position.x", "position.y", "position.z", "pitch",
               "linear.x", "linear.y", "linear.z", "angular.x", "angular.y", "angular.z",
               "world_linear.x", "world_linear.y", "world_linear.z",
               "world_angular.x", "world_angular.y", "world_angular.z")


class TaskSpecError(ValueError):
    """A task spec file is missing, malformed or disagrees with its MuJoCo model."""


# ---- the file's schema ----------------------------------------------------------------------------

Finite = Annotated[float, Field(allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
BaseField = Literal[BASE_FIELDS]


class _Schema(BaseModel):
    """One mapping of a spec file: strict types (no "1.5" for a number), every key known."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys_only(cls, data: Any) -> Any:
        # Checked here rather than left to extra="forbid" so that the error lists the valid keys.
        if isinstance(data, dict):
            unknown = [key for key in data if key not in cls.model_fields]
            if unknown:
                raise PydanticCustomError("unknown_key", "unknown key; valid keys: {valid}",
                                          {"key": str(unknown[0]), "valid": ", ".join(cls.model_fields)})
        return data


class _VariantSettings(_Schema):
    """What a variant sets: physics scales applied to the MuJoCo model, noise and delay applied by the sim."""

    body_mass_scale: Positive = 1.0  # masses and inertias (uniform density change)
    geom_friction_scale: Positive = 1.0  # all friction coefficients of all geoms
    actuator_gear_scale: Positive = 1.0  # actuator strength
    sensor_noise_std: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0  # on published joint states, odometry
    action_delay: Annotated[int, Field(ge=0)] = 0  # control periods between receiving a command and applying it


class _ObservationDoc(_Schema):
    positions: list[str]
    velocities: list[str]
    velocity_clip: Positive | None = None


class _ActuatorDoc(_Schema):
    name: str
    joint: str
    low: Finite
    high: Finite


class _ForwardDoc(_Schema):
    joint: str
    weight: Finite = 1.0


class _RewardDoc(_Schema):
    alive: Finite = 0.0
    forward_velocity: _ForwardDoc | None = None
    control_cost: Finite = 0.0


class _HealthyDoc(_Schema):
    position: str | None = None
    velocity: str | None = None
    index: int | list[int] | None = None
    low: float = -math.inf
    high: float = math.inf
    inclusive: bool = False


class _TerminationDoc(_Schema):
    require_finite: bool = False
    healthy: list[_HealthyDoc] = []


class _D4rlDoc(_Schema):
    random: Finite | None = None
    expert: Finite | None = None


class _BaseJointDoc(_Schema):
    position: BaseField | None = None
    velocity: BaseField | None = None
    offset: Finite = 0.0  # added to the position: the joint's value where the odometry reads 0


class _BaseDoc(_Schema):
    topic: Annotated[str, Field(min_length=1)] = "/odom"
    joints: dict[str, _BaseJointDoc]


class _SpecDoc(_Schema):
    name: str
    env_id: str
    control_period: Positive
    joints: list[str]
    observation: _ObservationDoc
    actuators: Annotated[list[_ActuatorDoc], Field(min_length=1)]
    reward: _RewardDoc
    termination: _TerminationDoc
    variants: dict[str, _VariantSettings | None]
    d4rl_score: _D4rlDoc = _D4rlDoc()
    base: _BaseDoc | None = None


def _describe(error: ValidationError) -> str:
    """A pydantic error as 'key.path: message' per problem, e.g. 'variants.real.frction: unknown key; ...'."""
    problems = []
    for e in error.errors(include_url=False):
        loc = list(e["loc"]) + ([e["ctx"]["key"]] if e["type"] == "unknown_key" else [])
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
        message = e["msg"] if e["type"] in ("unknown_key", "missing") else f"{e['msg']}, got {e['input']!r}"
        problems.append(f"{where or 'top level'}: {message}")
    return "; ".join(problems)


# ---- what a spec is ------------------------------------------------------------------------------


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


class Variant(_VariantSettings):
    """A robot variant: physics scales applied to the MuJoCo model, noise and delay applied by the sim."""

    name: str

    @property
    def nominal_physics(self) -> bool:
        return self.body_mass_scale == self.geom_friction_scale == self.actuator_gear_scale == 1.0

    def replace(self, **overrides) -> Variant:
        try:
            return Variant.model_validate({**self.model_dump(), **overrides})
        except ValidationError as e:
            raise TaskSpecError(f"variant {self.name!r}: {_describe(e)}") from None


VARIANT_KEYS = tuple(_VariantSettings.model_fields)


@dataclass(frozen=True)
class BaseMapping:
    """Observation entries that come from nav_msgs/Odometry on `topic` rather than from /joint_states."""

    topic: str
    joints: tuple[str, ...]  # floating-base joints: absent from /joint_states
    entries: tuple[tuple[int, str, float], ...]  # (observation index, odometry field, offset added)


@dataclass(frozen=True)
class BaseState:
    """A robot base's pose and twist as nav_msgs/Odometry carries them: the pose in the odometry frame,
    the twist in the base (child) frame."""

    position: np.ndarray  # x, y, z
    orientation: np.ndarray  # unit quaternion x, y, z, w (the ROS order)
    linear: np.ndarray
    angular: np.ndarray

    @classmethod
    def from_odometry(cls, msg) -> BaseState:
        """From a nav_msgs/Odometry read by its fields: an rclpy message or one decoded from a recording."""
        pose, twist, q = msg.pose.pose, msg.twist.twist, msg.pose.pose.orientation

        def vector(v):
            return np.array([v.x, v.y, v.z], dtype=np.float64)

        return cls(vector(pose.position), np.array([q.x, q.y, q.z, q.w], dtype=np.float64),
                   vector(twist.linear), vector(twist.angular))

    def field(self, name: str) -> float:
        """One of BASE_FIELDS. pitch is the rotation about the y axis in (-pi, pi]: for a robot moving in the
        x-z plane (roll = yaw = 0) it is the ZYX Euler pitch, and it stays unambiguous past +-pi/2."""
        if name == "pitch":
            x, y, z, w = self.orientation
            return math.atan2(2 * (w * y - x * z), 1 - 2 * (x * x + y * y))
        group, _, axis = name.partition(".")
        if group.startswith("world_"):
            vector = _rotate(self.orientation, getattr(self, group.removeprefix("world_")))
        else:
            vector = getattr(self, group)
        return float(vector["xyz".index(axis)])


def _rotate(quaternion: np.ndarray, v: np.ndarray) -> np.ndarray:
    """v rotated by the unit quaternion (x, y, z, w)."""
    u, w = quaternion[:3], quaternion[3]
    t = 2 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


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
    base: BaseMapping | None = None  # base joints' entries from odometry (None: all from /joint_states)

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

    @property
    def state_joints(self) -> tuple[str, ...]:
        """The joints /joint_states carries: all but the base joints, whose state comes from odometry."""
        base = self.base.joints if self.base else ()
        return tuple(j for j in self.joints if j not in base)

    def variant(self, name: str) -> Variant:
        try:
            return self.variants[name]
        except KeyError:
            known = sorted(self.variants)
            raise TaskSpecError(f"task {self.name!r} has no variant {name!r}; variants: {known}") from None

    def observation_from_joint_state(self, names: Sequence[str], position: Sequence[float],
                                     velocity: Sequence[float], base: BaseState | None = None) -> np.ndarray:
        """The observation vector from JointState fields, joints matched by name in any order, and, when
        the spec has a `base:` section, the base joints' entries from `base` (the latest odometry)."""
        names = list(names)
        if len(position) != len(names) or (self.obs_velocities and len(velocity) != len(names)):
            raise ValueError(
                f"JointState has {len(names)} names but {len(position)} positions and {len(velocity)} velocities"
            )
        from_base = self.base.joints if self.base else ()
        n = len(self.obs_positions)
        slots = [(i, j) for i, j in enumerate(self.obs_positions) if j not in from_base]
        vel_slots = [(n + i, j) for i, j in enumerate(self.obs_velocities) if j not in from_base]
        index = {name: i for i, name in enumerate(names)}
        missing = sorted({j for _, j in slots + vel_slots} - index.keys())
        if missing:
            raise ValueError(f"JointState lacks joints {missing} needed by task {self.name!r}; it has {names}")
        obs = np.empty(self.obs_dim)
        obs[[i for i, _ in slots]] = np.asarray(position, dtype=np.float64)[[index[j] for _, j in slots]]
        if vel_slots:
            obs[[i for i, _ in vel_slots]] = np.asarray(velocity, dtype=np.float64)[[index[j] for _, j in vel_slots]]
        if self.base is not None:
            if base is None:
                raise ValueError(f"task {self.name!r} takes {list(from_base)} from odometry on {self.base.topic}, "
                                 f"and none has been received")
            for i, field, offset in self.base.entries:
                obs[i] = base.field(field) + offset
        if self.velocity_clip is not None:
            obs[n:] = np.clip(obs[n:], -self.velocity_clip, self.velocity_clip)
        return obs

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
        part of the env: morec.simulator.SimulatedRobot applies them.
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
    try:
        doc = _SpecDoc.model_validate(_read_spec(path))
    except ValidationError as e:
        raise TaskSpecError(f"{path}: {_describe(e)}") from None
    return _build(doc, path)


def _read_yaml(path: Path) -> dict:
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise TaskSpecError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(doc, dict):
        raise TaskSpecError(f"{path}: expected a mapping at the top level")
    return doc


def _read_spec(path: Path, chain: tuple[Path, ...] = ()) -> dict:
    """A spec file's mapping; with `extends: <spec file, relative to this one>` the other file's top-level
    sections fill in those this one does not have."""
    doc = _read_yaml(path)
    if "extends" not in doc:
        return doc
    parent = doc.pop("extends")
    if not isinstance(parent, str):
        raise TaskSpecError(f"{path}: extends: expected the path of a spec file, got {parent!r}")
    parent_path = path.parent / parent
    if not parent_path.is_file():
        raise TaskSpecError(f"{path}: extends: {parent_path} does not exist")
    chain = (*chain, path.resolve())
    if parent_path.resolve() in chain:
        raise TaskSpecError(f"{path}: extends: {parent_path} extends this file again (a cycle)")
    return {**_read_spec(parent_path, chain), **doc}


def _build(doc: _SpecDoc, path: Path) -> TaskSpec:
    """The TaskSpec of a schema-valid file, once its names agree with each other."""

    def error(where: str, message: str) -> TaskSpecError:
        return TaskSpecError(f"{path}: {where}: {message}")

    def names(where: str, values: list[str], allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
        if len(set(values)) != len(values):
            raise error(where, f"expected distinct names, got {values}")
        unknown = [v for v in values if allowed is not None and v not in allowed]
        if unknown:
            raise error(where, f"{unknown} are not in joints {list(allowed)}")
        return tuple(values)

    joints = names("joints", doc.joints)
    positions = names("observation.positions", doc.observation.positions, joints)
    velocities = names("observation.velocities", doc.observation.velocities, joints)
    for i, act in enumerate(doc.actuators):
        if act.joint not in joints:
            raise error(f"actuators[{i}].joint", f"{act.joint!r} is not in joints {list(joints)}")
        if not act.low < act.high:
            raise error(f"actuators[{i}].high", f"must exceed low ({act.low} >= {act.high})")
    forward = doc.reward.forward_velocity
    if forward is not None and forward.joint not in velocities:
        raise error("reward.forward_velocity.joint", f"{forward.joint!r} has no velocity in the observation")
    healthy = tuple(_healthy_range(item, f"termination.healthy[{i}]", positions, velocities, error)
                    for i, item in enumerate(doc.termination.healthy))
    if "nominal" not in doc.variants:
        raise error("variants", "a 'nominal' variant is required")
    variants = {name: Variant(name=name, **(settings or _VariantSettings()).model_dump())
                for name, settings in doc.variants.items()}
    return TaskSpec(
        name=doc.name,
        env_id=doc.env_id,
        control_period=doc.control_period,
        joints=joints,
        obs_positions=positions,
        obs_velocities=velocities,
        velocity_clip=doc.observation.velocity_clip,
        actuators=tuple(Actuator(a.name, a.joint, a.low, a.high) for a in doc.actuators),
        alive_reward=doc.reward.alive,
        forward_joint=forward.joint if forward else None,
        forward_weight=forward.weight if forward else 0.0,
        control_cost=doc.reward.control_cost,
        require_finite=doc.termination.require_finite,
        healthy=healthy,
        variants=variants,
        path=path,
        d4rl_random=doc.d4rl_score.random,
        d4rl_expert=doc.d4rl_score.expert,
        base=_base_mapping(doc.base, joints, positions, velocities, error) if doc.base else None,
    )


def _healthy_range(item: _HealthyDoc, where: str, positions: tuple[str, ...], velocities: tuple[str, ...],
                   error) -> HealthyRange:
    selectors = [k for k in ("position", "velocity", "index") if getattr(item, k) is not None]
    if len(selectors) != 1:
        raise error(where, "give exactly one of position: <joint>, velocity: <joint>, index: <i or [start, stop]>")
    key = selectors[0]
    dim = len(positions) + len(velocities)
    if key == "position":
        if item.position not in positions:
            raise error(f"{where}.position", f"{item.position!r} has no position in the observation")
        indices = (positions.index(item.position),)
    elif key == "velocity":
        if item.velocity not in velocities:
            raise error(f"{where}.velocity", f"{item.velocity!r} has no velocity in the observation")
        indices = (len(positions) + velocities.index(item.velocity),)
    else:
        bounds = [item.index, item.index + 1] if isinstance(item.index, int) else item.index
        if len(bounds) != 2 or not 0 <= bounds[0] < bounds[1] <= dim:
            raise error(f"{where}.index",
                        f"expected an index or [start, stop] within the {dim}-dim observation, got {item.index!r}")
        indices = tuple(range(*bounds))
    if not item.low < item.high:
        raise error(f"{where}.high", f"must exceed low ({item.low} >= {item.high})")
    return HealthyRange(indices, item.low, item.high, item.inclusive)


def _base_mapping(doc: _BaseDoc, joints: tuple[str, ...], positions: tuple[str, ...], velocities: tuple[str, ...],
                  error) -> BaseMapping:
    entries = []
    for joint, source in doc.joints.items():
        where = f"base.joints.{joint}"
        if joint not in joints:
            raise error(where, f"{joint!r} is not in joints {list(joints)}")
        for kind, observed, first in (("position", positions, 0), ("velocity", velocities, len(positions))):
            field = getattr(source, kind)
            if joint in observed and field is None:
                raise error(where, f"the observation has its {kind}: name the odometry field it comes from "
                                   f"({kind}: <one of {', '.join(BASE_FIELDS)}>)")
            if joint in observed:
                entries.append((first + observed.index(joint), field, source.offset if kind == "position" else 0.0))
    return BaseMapping(doc.topic, tuple(doc.joints), tuple(sorted(entries)))
