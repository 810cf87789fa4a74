"""MuJoCo as the planning model: the task's simulator behind the rollout engine's DynamicsBackend interface.

This is the upper bound of the closed-loop benchmark: the same planner and rollout engine, with the
learned ensemble replaced by the simulator itself. An observation becomes a MuJoCo state by the task
spec's joint names; joint positions the observation leaves out (HalfCheetah's rootx) take their
qpos0 value, which is harmless because the tasks' dynamics do not depend on them. A batch is
stepped with mujoco.rollout, MuJoCo's C loop over initial states (one thread), frame_skip substeps
with the action held as ctrl, exactly as Gymnasium's env.step does.
"""

from __future__ import annotations

import mujoco
import numpy as np
from mujoco import rollout

from .task_spec import TaskSpec, Variant

FULL = mujoco.mjtState.mjSTATE_FULLPHYSICS


class MujocoDynamics:
    """DynamicsBackend with one member, the simulator: mean = (s', r(s, a, s')), std = 0, [1, B, S+1]."""

    def __init__(self, task: TaskSpec, variant: str | Variant = "nominal"):
        env = task.make_env(variant)
        sim = env.unwrapped
        self.task, self.model, self.frame_skip = task, sim.model, sim.frame_skip
        env.close()
        self.data = mujoco.MjData(self.model)
        self.obs_dim, self.act_dim = task.obs_dim, task.action_dim
        self.elites = np.array([0])
        # Columns of qpos and qvel in mujoco's FULLPHYSICS state vector (time, qpos, qvel, ...).
        qpos_at = mujoco.mj_stateSize(self.model, mujoco.mjtState.mjSTATE_TIME)
        qvel_at = mujoco.mj_stateSize(self.model, mujoco.mjtState.mjSTATE_TIME | mujoco.mjtState.mjSTATE_QPOS)

        def joint(name):
            return mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, name)

        self._pos_cols = qpos_at + self.model.jnt_qposadr[[joint(j) for j in task.obs_positions]]
        self._vel_cols = qvel_at + self.model.jnt_dofadr[[joint(j) for j in task.obs_velocities]]
        # The state at qpos0 and rest: what every row starts from before its observation is written in.
        mujoco.mj_resetData(self.model, self.data)
        self._rest = np.empty(mujoco.mj_stateSize(self.model, FULL))
        mujoco.mj_getState(self.model, self.data, self._rest, FULL)

    def predict(self, obs: np.ndarray, act: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # float64 throughout: the simulator's own precision (FilteredDynamics casts what it keeps).
        obs = np.asarray(obs, np.float64)
        act = np.asarray(act, np.float64)
        state = np.tile(self._rest, (len(obs), 1))
        npos = len(self._pos_cols)
        state[:, self._pos_cols] = obs[:, :npos]
        state[:, self._vel_cols] = obs[:, npos:]
        states, _ = rollout.rollout(self.model, self.data, state, act[:, None, :], nstep=self.frame_skip)
        final = states[:, -1]
        velocity = final[:, self._vel_cols]
        if self.task.velocity_clip is not None:
            velocity = np.clip(velocity, -self.task.velocity_clip, self.task.velocity_clip)
        next_obs = np.concatenate([final[:, self._pos_cols], velocity], axis=1)
        reward = self.task.reward(obs, act, next_obs)
        mean = np.concatenate([next_obs, reward[:, None]], axis=1)[None]
        return mean, np.zeros_like(mean)
