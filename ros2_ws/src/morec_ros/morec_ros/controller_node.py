"""Controller node: sampling MPC through the filtered learned model, or an exported policy.

With `model: mujoco` the planner plans through the task's nominal MuJoCo model instead of the learned
ensemble: the upper bound of the closed-loop benchmark (same planner, true dynamics).

Commands the robot as a client of a forward_command_controller: one value per actuator on the
command topic, clipped to the actuator limits. A planner thread plans from the latest valid
/joint_states with MPPI or CEM through FilteredDynamics on ONNX Runtime, in-process (a ROS round
trip per model step would be far too slow), and publishes the plan on /morec/plan. In real time
each plan's action for now goes out as soon as the plan is ready, so a planner faster than the
control period answers every state before the robot's next step; the control timer fills in, from
the latest plan that has started (plan_schedule.py), each period in which no plan answered.
With `latency_compensation` a planner slower than the period plans from the state the model
predicts for the step its plan will make (the median planning time in whole periods) under the
actions already committed until then, and the plan starts there; without it, a late plan starts
when its state arrived and its first actions are skipped. In lockstep the sim waits for each
command, so the planner thread answers every new state with one.

Watchdog: when no valid state has arrived for `stale_periods` control periods, or the latest plan
has been used up that long ago (planner stuck), the controller publishes zeros (or holds the last
command) and reports ERROR until a fresh state is planned for, then resumes by itself. The timers
run on the steady clock, so the watchdog fires even when a simulator that publishes /clock dies.
"""

import dataclasses
import sys
import threading
import time
from collections import deque

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from morec.planners import PLANNERS, CEMConfig, MPPIConfig, make_planner, policy_value
from morec.rollout import FilterConfig, FilteredDynamics
from morec.runtime import ModelFileError, OnnxCritic, OnnxPolicy
from morec.task_spec import TaskSpec, load_task_spec
from morec_ros.common import (InputCheck, bundle_dir, declare, diagnostics, load_dynamics, load_reward,
                              main_for, matrix, model_file)
from morec_ros.plan_schedule import PlanSchedule, lead_periods

MODES = ('mpc', 'policy')
MODELS = ('learned', 'mujoco')
STALE_ACTIONS = ('zero', 'hold')
UNFILTERED = ('elite_mean', 'random_elite')
PLANNER_CONFIGS = {'mppi': MPPIConfig, 'cem': CEMConfig}

# Lockstep: the sim publishes each state once (transient-local) and waits for the answer, so a
# controller that joins late must still receive it. Real time: only the freshest state matters,
# and a best-effort reader matches reliable and best-effort publishers alike.
LOCKSTEP_STATE_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                durability=DurabilityPolicy.TRANSIENT_LOCAL)
REALTIME_STATE_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
# The sim asks for reliable commands: a lost one would stall a lockstep loop.
COMMAND_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


class ControllerNode(Node):

    def __init__(self):
        super().__init__('morec_controller')
        task = declare(self, 'task', 'halfcheetah', 'task name, Gymnasium id or path of a spec YAML (sim/)')
        bundle = declare(self, 'bundle', '', "model bundle directory; '' = models/<task>")
        command_topic = declare(self, 'command_topic', '/effort_controller/commands', 'Float64MultiArray commands')
        self._mode = declare(self, 'mode', 'mpc', "'mpc': plan through the model; 'policy': run an ONNX policy")
        model_kind = declare(self, 'model', 'learned', "mode 'mpc': 'learned' (the bundle) or 'mujoco' "
                                                       "(the task's nominal simulator, the upper bound)")
        policy = declare(self, 'policy', '', "mode 'policy': ONNX file obs [batch, S] -> action [batch, A] "
                                             '(relative paths from the repository root)')
        prior_policy = declare(self, 'prior_policy', '', "mode 'mpc': an ONNX policy whose rollout through the model "
                                                         "seeds every plan (the behaviour policy); '' = none")
        terminal_value = declare(self, 'terminal_value', '',
                                 "mode 'mpc': an offline policy's critic.onnx (`morec train-policy`); every plan's "
                                 "end is valued Q(s, pi(s)) with the policy.onnx beside it; '' = none")
        planner = declare(self, 'planner', 'mppi', f'one of {PLANNERS}')
        filtered = declare(self, 'filtered', True, 'plan through the MOREC filter (else unfiltered_mode)')
        unfiltered_mode = declare(self, 'unfiltered_mode', 'elite_mean', f'when not filtered: one of {UNFILTERED}')
        threshold = declare(self, 'filter_threshold', FilterConfig.threshold, 'r_D below this ends a model rollout')
        samples_per_elite = declare(self, 'samples_per_elite', FilterConfig.samples_per_elite,
                                    'filter candidates drawn from each elite')
        device = declare(self, 'device', 'auto', "ONNX Runtime device: 'auto', 'cpu' or 'cuda'")
        threads = declare(self, 'threads', 0, 'ONNX Runtime intra-op threads (0: its default)')
        self._lockstep = declare(self, 'lockstep', False, 'the sim waits for each command: answer every state once')
        self._compensate = declare(self, 'latency_compensation', True,
                                   'real time: plan from the state predicted for when the plan will be ready')
        stale_periods = declare(self, 'stale_periods', 5.0, 'state older than this many control periods is stale')
        self._stale_action = declare(self, 'stale_action', 'zero', f'command while stale: one of {STALE_ACTIONS}')
        diagnostics_period = declare(self, 'diagnostics_period', 1.0, 'seconds between /diagnostics messages')
        latency_window = declare(self, 'latency_window', 500, 'plans the latency percentiles cover')
        if planner not in PLANNER_CONFIGS:
            raise ValueError(f'planner must be one of {PLANNERS}, got {planner!r}')
        # The chosen planner's settings, each a parameter with the config's default.
        settings = {f.name: declare(self, f.name, f.default, f'{planner} setting (morec.planners)')
                    for f in dataclasses.fields(PLANNER_CONFIGS[planner])}
        for name, value, allowed in (('mode', self._mode, MODES), ('stale_action', self._stale_action, STALE_ACTIONS),
                                     ('unfiltered_mode', unfiltered_mode, UNFILTERED), ('model', model_kind, MODELS)):
            if value not in allowed:
                raise ValueError(f'{name} must be one of {allowed}, got {value!r}')
        if not stale_periods > 0 or not diagnostics_period > 0 or latency_window < 1:
            raise ValueError('stale_periods, diagnostics_period and latency_window must be positive')

        self._spec = spec = load_task_spec(task)
        self._period = spec.control_period
        self._stale_after = stale_periods * spec.control_period
        self._planner = self._policy = self._predictor = None
        if self._mode == 'mpc':
            if model_kind == 'mujoco':
                # Imported here: a controller on a robot plans through its ONNX bundle and has no MuJoCo.
                from morec.mujoco_model import MujocoDynamics

                # One exact member and no dynamics reward, so the filter does not apply; no clip either,
                # since the simulator's states are true ones however fast.
                dynamics, reward, cfg = MujocoDynamics(spec), None, FilterConfig(mode='elite_mean', clip=None)
                source, label = f'MuJoCo {spec.env_id} nominal', 'true model, no filter: elite_mean'
            else:
                source = bundle_dir(bundle, spec)
                dynamics = load_dynamics(source, spec, device, threads)
                reward = load_reward(source, spec, device, threads) if filtered else None
                cfg = FilterConfig(mode='filter' if filtered else unfiltered_mode, threshold=threshold,
                                   samples_per_elite=samples_per_elite)
                label = 'filtered' if filtered else unfiltered_mode
            model = FilteredDynamics(dynamics, reward, cfg, is_terminal=spec.is_terminal)
            # Latency compensation predicts with the elites' mean, the best open-loop predictor (README).
            self._predictor = FilteredDynamics(dynamics, None, FilterConfig(mode='elite_mean', clip=cfg.clip))
            prior = OnnxPolicy(model_file(prior_policy), spec, device, threads) if prior_policy else None
            value = None
            if terminal_value:
                critic_path = model_file(terminal_value)
                value = policy_value(OnnxCritic(critic_path, spec, device, threads),
                                     OnnxPolicy(critic_path.parent / 'policy.onnx', spec, device, threads))
            self._planner = make_planner(planner, model, spec, prior=prior, terminal_value=value, **settings)
            self._describe = (f'{planner} ({label}) on {source}' + (f', prior {prior_policy}' if prior else '')
                              + (f', terminal value {terminal_value}' if value else ''))
            self._warm_up(source)
        else:
            if not policy:
                raise ValueError("mode 'policy' needs the policy parameter: the path of an exported ONNX policy")
            self._policy = OnnxPolicy(model_file(policy), spec, device, threads)
            self._describe = f'policy {policy}'
            self._warm_up(policy)

        self._check = InputCheck(self, spec)
        self._lock = threading.Condition()
        self._state = None  # (obs, stamp ns, sequence number, steady receipt time) of the latest valid state
        self._received = 0  # sequence number of the latest valid state
        self._answered = 0  # sequence number of the state the latest plan was made from
        self._schedule = PlanSchedule(spec.control_period)  # real time: plans by their start (steady time)
        self._answered_at = 0.0  # steady time the latest plan was finished
        self._lead = 0  # periods between the latest plan's state and its start (latency compensation)
        self._plan_value = float('nan')
        self._last_command = np.zeros(spec.action_dim)
        self._answered_since_tick = False  # real time: a fresh plan's action went out since the last tick
        self._stale, self._stale_reason = False, ''
        self._latency = deque(maxlen=latency_window)
        self._count = dict(plans=0, commands=0, deadline_misses=0, stale_events=0, non_finite_actions=0)
        self._reported = dict(commands=0, dropped=0, time=time.monotonic())

        self._cmd_pub = self.create_publisher(Float64MultiArray, command_topic, COMMAND_QOS)
        self._plan_pub = self.create_publisher(Float64MultiArray, 'morec/plan', 1)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_subscription(JointState, 'joint_states', self._on_state,
                                 LOCKSTEP_STATE_QOS if self._lockstep else REALTIME_STATE_QOS)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(spec.control_period, self._on_tick, clock=steady)
        self.create_timer(diagnostics_period, self._publish_diagnostics, clock=steady)

        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._plan_loop, name='planner', daemon=True)
        self._thread.start()
        self.get_logger().info(
            f"{spec.env_id}: {self._describe}, {'lockstep' if self._lockstep else 'real time'}, "
            f'period {spec.control_period} s, commands on {command_topic}')

    def _warm_up(self, source):
        """One plan on a zero state: ONNX Runtime's first run is slow, and a graph that fails should fail now."""
        try:
            if self._planner is not None:
                self._planner.plan(np.zeros(self._spec.obs_dim))
                self._planner.reset()
            else:
                self._policy(np.zeros((1, self._spec.obs_dim)))
        except ModelFileError:
            raise
        except Exception as e:  # ONNX Runtime raises its own types for graphs that load but do not run
            raise ModelFileError(f'{source}: the model does not run on a {self._spec.name} state ({e}); '
                                 f're-export it with `morec export`') from e

    # ---- executor thread ----------------------------------------------------------------------
    def _on_state(self, msg):
        checked = self._check.state(msg)
        if checked is None:
            return
        with self._lock:
            self._received += 1
            self._state = (*checked, self._received, time.monotonic())
            self._lock.notify()

    def _on_tick(self):
        command = None
        with self._lock:
            if self._state is None:
                return  # nothing to act on yet; silence also keeps a lockstep sim where it is
            now = time.monotonic()
            state_age = now - self._state[3]
            if self._lockstep:  # only waiting for the robot counts: it waits while we plan
                waited = now - self._answered_at
                self._set_stale(self._answered == self._received and waited > self._stale_after,
                                f'no new /joint_states for {waited:.2f} s since the last command')
            else:
                start = self._schedule.latest_start
                plan_age = now - start if start is not None else 0.0
                silent = state_age > self._stale_after
                # A planner that stopped keeping up leaves a plan whose actions are long used up.
                stuck = plan_age > self._stale_after + self._schedule.latest_horizon * self._period
                self._set_stale(silent or stuck, f'no new /joint_states for {state_age:.2f} s' if silent
                                else f'the latest plan is {plan_age:.2f} s old: the planner is not keeping up')
            if self._stale:
                command = np.zeros(self._spec.action_dim) if self._stale_action == 'zero' else self._last_command
            elif not self._lockstep:
                # One command per period: a plan that answered since the last tick already sent this one.
                if not self._answered_since_tick:
                    command = self._schedule.action_at(now)
                self._answered_since_tick = False
        if command is not None:
            self._send(command)

    def _set_stale(self, stale, reason):
        if stale and not self._stale:
            self._count['stale_events'] += 1
            self._check.restart()  # a restarted robot's clock may start over
            self.get_logger().error(f'{reason} (limit {self._stale_after:.2f} s): '
                                    f'commanding {self._stale_action} until a fresh state is planned for')
        elif self._stale and not stale:
            self.get_logger().info('fresh state: resuming control')
        self._stale, self._stale_reason = stale, reason if stale else ''

    # ---- planner thread -----------------------------------------------------------------------
    def _plan_loop(self):
        last_stamp, last_lead = None, 0
        while not self._stop.is_set():
            with self._lock:
                if not self._lock.wait_for(lambda: self._received > self._answered or self._stop.is_set(), 0.1):
                    continue
                if self._stop.is_set():
                    return
                obs, stamp, seq, received = self._state
                lead, committed = 0, None
                # While stale the robot got zeros (or holds), not the schedule's actions: nothing to predict with.
                if self._planner is not None and self._compensate and not self._lockstep and not self._stale:
                    lead = lead_periods(self._latency, self._period, self._planner.cfg.horizon)
                    committed = self._schedule.committed(received, lead)
            if committed is None:
                lead = 0  # nothing planned yet (a new episode): plan from the state as it is
            start = time.perf_counter()
            actions, states, value = self._act(self._predict(obs, committed), stamp, last_stamp, lead - last_lead)
            latency = time.perf_counter() - start
            last_stamp, last_lead = stamp, lead
            if not self.context.ok():
                return  # Ctrl-C shut rclpy down while planning (destroy_node() stops this thread after)
            if states is not None:
                self._plan_pub.publish(matrix(states, ('horizon', 'state')))
            with self._lock:
                self._schedule.add(actions, received + lead * self._period)
                self._plan_value, self._lead = value, lead
                self._answered, self._answered_at = seq, time.monotonic()
                self._latency.append(latency)
                self._count['plans'] += 1
                self._count['deadline_misses'] += latency > self._period
            if self._lockstep:
                self._send(actions[0])
            else:
                self._send_started()

    def _send_started(self):
        """Real time: the latest plan's action for now, if that plan has started (else the timer's turn)."""
        with self._lock:
            now = time.monotonic()
            command = None if self._stale or now < self._schedule.latest_start else self._schedule.action_at(now)
            self._answered_since_tick |= command is not None
        if command is not None:
            self._send(command)

    def _predict(self, obs, committed):
        """The state after the committed actions [n, A] under the model's elite mean (obs itself when None)."""
        for act in committed if committed is not None else ():
            obs = self._predictor.step(obs[None], act[None], rng=None).expected_obs[0]  # the elite mean draws nothing
        return obs

    def _act(self, obs, stamp, last_stamp, lead_change):
        """(actions [H, A], predicted states [H, S] or None, model value) for the state at `stamp`."""
        if self._policy is not None:
            return self._policy(obs[None]), None, float('nan')
        if last_stamp is None or stamp <= last_stamp:
            self._planner.reset()  # a new episode or a restarted robot: the previous plan does not apply
            elapsed = 0
        else:  # periods between this plan's start and the previous one's
            elapsed = max(1, round((stamp - last_stamp) / (self._period * 1e9)) + lead_change)
        plan = self._planner.plan(obs, elapsed)
        return plan.actions, plan.states, plan.value

    # ---- both threads ---------------------------------------------------------------------------
    def _send(self, action):
        command = np.clip(np.asarray(action, np.float64), self._spec.action_low, self._spec.action_high)
        with self._lock:
            if not np.all(np.isfinite(command)):
                self._count['non_finite_actions'] += 1
                command = np.zeros(self._spec.action_dim)
            self._last_command = command
            self._count['commands'] += 1
        self._cmd_pub.publish(Float64MultiArray(data=command.tolist()))

    def _publish_diagnostics(self):
        now = time.monotonic()
        with self._lock:
            count = dict(self._count)
            latency = np.array(self._latency) * 1e3
            stale, reason, waiting = self._stale, self._stale_reason, self._state is None
            age = now - self._state[3] if self._state else float('nan')
            value, lead = self._plan_value, self._lead
        dropped = sum(self._check.dropped.values())
        fresh_drops = dropped - self._reported['dropped']
        rate = (count['commands'] - self._reported['commands']) / (now - self._reported['time'])
        self._reported = dict(commands=count['commands'], dropped=dropped, time=now)
        if stale:
            level, message = DiagnosticStatus.ERROR, f'{reason}: commanding {self._stale_action}'
        elif waiting:
            level, message = DiagnosticStatus.WARN, 'waiting for /joint_states'
        elif fresh_drops:
            level, message = DiagnosticStatus.WARN, f'dropped {fresh_drops} invalid messages'
        else:
            level, message = DiagnosticStatus.OK, 'ok'
        p50, p99 = np.percentile(latency, [50, 99]) if len(latency) else (float('nan'), float('nan'))
        values = {'mode': self._mode, 'lockstep': self._lockstep, **count,
                  'control_rate_hz': f'{rate:.2f}', 'latency_p50_ms': f'{p50:.2f}', 'latency_p99_ms': f'{p99:.2f}',
                  'lead_periods': lead, 'state_age_s': f'{age:.3f}', 'plan_value': f'{value:.3f}',
                  'states_dropped': dropped,
                  **self._check.dropped}
        diagnostics(self, self._diag_pub, 'controller', level, message, self._describe, values)

    def destroy_node(self):
        self._stop.set()
        with self._lock:
            self._lock.notify()
        self._thread.join(timeout=5.0)
        return super().destroy_node()


main = main_for(ControllerNode, 'morec_controller')

if __name__ == '__main__':
    sys.exit(main())
