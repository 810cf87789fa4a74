"""What the controller acts with, without ROS: a planner through the model, or an exported policy.

Built from the node's parameters, it gives the ControlLoop its two callbacks: `act` (a plan, or the
policy's action, for a state) and `predict` (the state after actions already committed, for latency
compensation). The controller node and the virtual-clock runs (virtual_time.py) share it, so both run
exactly the controller a params file describes.
"""

import dataclasses

import numpy as np

from morec.planners import make_planner, policy_value
from morec.rollout import FilterConfig, FilteredDynamics
from morec.runtime import ModelFileError, OnnxCritic, OnnxPolicy
from morec.task_spec import TaskSpec
from morec_ros.common import bundle_dir, load_dynamics, load_reward, model_file
from morec_ros.node_params import ControllerParams


class Controller:

    def __init__(self, spec: TaskSpec, p: ControllerParams, planner_settings=None):
        self.spec, self.mode = spec, p.mode
        self.planner = self.policy = self._predictor = None
        if p.mode == 'mpc':
            if p.model == 'mujoco':
                # Imported here: a controller on a robot plans through its ONNX bundle and has no MuJoCo.
                from morec.mujoco_model import MujocoDynamics

                # One exact member and no dynamics reward, so the filter does not apply; no clip either,
                # since the simulator's states are true ones however fast.
                dynamics, reward, cfg = MujocoDynamics(spec), None, FilterConfig(mode='elite_mean', clip=None)
                source, label = f'MuJoCo {spec.env_id} nominal', 'true model, no filter: elite_mean'
            else:
                source = bundle_dir(p.bundle, spec)
                dynamics = load_dynamics(source, spec, p.device, p.threads)
                reward = load_reward(source, spec, p.device, p.threads) if p.rollout == 'filter' else None
                cfg = FilterConfig(mode=p.rollout, threshold=p.filter_threshold, samples_per_elite=p.samples_per_elite)
                label = p.rollout
            model = FilteredDynamics(dynamics, reward, cfg, is_terminal=spec.is_terminal)
            # Latency compensation predicts with the elites' mean, the best open-loop predictor (docs/results.md).
            self._predictor = FilteredDynamics(dynamics, None, FilterConfig(mode='elite_mean', clip=cfg.clip))
            prior = OnnxPolicy(model_file(p.prior_policy), spec, p.device, p.threads) if p.prior_policy else None
            value = None
            if p.terminal_value:
                critic_path = model_file(p.terminal_value)
                value = policy_value(OnnxCritic(critic_path, spec, p.device, p.threads),
                                     OnnxPolicy(critic_path.parent / 'policy.onnx', spec, p.device, p.threads))
            settings = dataclasses.asdict(planner_settings) if planner_settings is not None else {}
            self.planner = make_planner(p.planner, model, spec, prior=prior, terminal_value=value, **settings)
            self.describe = (f'{p.planner} ({label}) on {source}' + (f', prior {p.prior_policy}' if prior else '')
                             + (f', terminal value {p.terminal_value}' if value else ''))
            self._warm_up(source)
        else:
            self.policy = OnnxPolicy(model_file(p.policy), spec, p.device, p.threads)
            self.describe = f'policy {p.policy}'
            self._warm_up(p.policy)

    def _warm_up(self, source):
        """One plan on a zero state: ONNX Runtime's first run is slow, and a graph that fails should fail now."""
        try:
            self.act(np.zeros(self.spec.obs_dim), 0)
        except ModelFileError:
            raise
        except Exception as e:  # ONNX Runtime raises its own types for graphs that load but do not run
            raise ModelFileError(f'{source}: the model does not run on a {self.spec.name} state ({e}); '
                                 f're-export it with `morec export`') from e
        if self.planner is not None:
            self.planner.reset()

    def act(self, obs, elapsed):
        """(actions [H, A], the plan's predicted states on demand or None, model value) for a state
        (ControlLoop's Act)."""
        if self.policy is not None:
            return self.policy(obs[None]), None, float('nan')
        if elapsed == 0:
            self.planner.reset()  # a new episode or a restarted robot: the previous plan does not apply
        plan = self.planner.plan(obs, elapsed)
        return plan.actions, lambda: plan.states, plan.value

    def predict(self, obs, committed):
        """The state after the committed actions [n, A] under the model's elite mean (ControlLoop's Predict)."""
        for act in committed:
            obs = self._predictor.step(obs[None], act[None], rng=None).expected_obs[0]  # the elite mean draws nothing
        return obs
