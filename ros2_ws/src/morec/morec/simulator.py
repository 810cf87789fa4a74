"""The MuJoCo task as the sim node drives it: commands in; joint states and, for specs with a base, odometry out."""

from __future__ import annotations

from collections import deque

import numpy as np

from .task_spec import BaseState, TaskSpec, TaskSpecError, Variant


class SimulatedRobot:
    """The MuJoCo task as the sim node drives it, at joint level.

    Commands are clipped to the actuator limits and delayed by the variant's action_delay; joint
    positions and velocities, and the base pose and twist, carry its sensor noise. An episode ends on
    the task's termination or after `episode_length` steps; the caller decides when to reset.
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
        self._base_body = self._find_base_body(model, ids) if spec.base else None
        # Kinematics of the base are computed on a copy, so that reading odometry never touches the
        # simulation's own data (a run is the same with or without it).
        self._scratch = mujoco.MjData(model) if spec.base else None
        self._seed = seed
        self._noise = np.random.default_rng(seed)
        # Its own generator: odometry noise leaves the joint-state noise of a seed unchanged.
        self._base_noise = np.random.default_rng([seed, 1])
        self._pending: deque[np.ndarray] = deque()
        self.episode = 0
        self.total_steps = 0
        self.reset()

    def _find_base_body(self, model, ids) -> int:
        bodies = {int(model.jnt_bodyid[i]) for i, j in zip(ids, self.spec.joints) if j in self.spec.base.joints}
        if len(bodies) != 1:
            raise TaskSpecError(f"{self.spec.path}: base joints {list(self.spec.base.joints)} move {len(bodies)} "
                                f"bodies; odometry describes one")
        return bodies.pop()

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

    def base_state(self) -> BaseState:
        """The base body's pose in the MuJoCo world frame and its twist in its own frame, as a robot's
        odometry reports them (world z up, x forward: the ROS conventions)."""
        import mujoco

        if self._base_body is None:
            raise RuntimeError(f"task spec {self.spec.path} has no base section")
        model, data, scratch = self.env.unwrapped.model, self.env.unwrapped.data, self._scratch
        scratch.qpos[:], scratch.qvel[:] = data.qpos, data.qvel
        # After mj_step the world poses are those at the start of the step: recompute them from the state.
        mujoco.mj_kinematics(model, scratch)
        mujoco.mj_comPos(model, scratch)
        mujoco.mj_comVel(model, scratch)
        twist = np.zeros(6)  # angular, linear at the body frame origin (XBODY; BODY is the inertial frame), in it
        mujoco.mj_objectVelocity(model, scratch, mujoco.mjtObj.mjOBJ_XBODY, self._base_body, twist, 1)
        w, x, y, z = scratch.xquat[self._base_body]
        position, orientation = scratch.xpos[self._base_body].copy(), np.array([x, y, z, w])
        angular, linear = twist[:3], twist[3:]
        std = self.variant.sensor_noise_std
        if std > 0:
            position, linear, angular = (v + self._base_noise.normal(0.0, std, 3) for v in (position, linear, angular))
            tilt = np.array([w, x, y, z])
            mujoco.mju_quatIntegrate(tilt, self._base_noise.normal(0.0, std, 3), 1.0)  # a small random rotation
            orientation = np.array([*tilt[1:], tilt[0]])
        return BaseState(position, orientation, linear, angular)

    def close(self) -> None:
        self.env.close()
