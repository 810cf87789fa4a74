"""The controller's scheduling and watchdog without ROS: states, ticks and plans come in with the time.

Times are seconds on one steady clock, passed in by the caller. Three inputs drive the loop:
- receive(msg, now): a /joint_states message; an invalid one is dropped (InputCheck) and never acted on.
- tick(now): the control timer, once per control period.
- request(now), plan(request), answer(request, actions, value, now): when a plan is `due`, the planner
  thread takes the latest state, plans for it and hands the plan back.
tick() and answer() return the command to publish, or None. The loop is not thread-safe: its owner
serialises every call but plan(), which touches no loop state and runs the (slow) model.

Real time: the loop plans at its own period, whatever the state rate: a plan is asked for as soon as a
state stamped a period after the last planned one arrives and the planner is free, from the latest state
(states in between only replace it), so a 1000 Hz broadcaster neither floods the planner nor the command
topic. Each plan's action for now goes out as soon as the
plan is ready, so a planner faster than the control period answers before the robot's next step; the
tick fills in from the latest plan that has started (plan_schedule.py) unless that plan already sent this
very action since the last tick, so a period whose plan answers after the tick gets two commands (the
fill-in, then its plan's) and one whose plan is late still gets the latest plan's next action. With latency
compensation a planner slower than the period plans from the state the model predicts for the step
its plan will make (the median planning time in whole periods) under the actions already committed
until then, and the plan starts there; without it, a late plan starts when its state arrived and its
first actions are skipped. In lockstep the robot waits for each command, so every new state is
answered by its own plan, with exactly one command.

Watchdog: when no valid state has arrived for `stale_periods` control periods, or the latest plan has
been used up that long ago (planner stuck), the loop commands zeros (or holds the last command) and
reports ERROR until a fresh state is planned for, then resumes by itself. In lockstep only waiting
for the robot counts: it waits while we plan.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np

from morec.task_spec import TaskSpec
from morec_ros.input_check import InputCheck
from morec_ros.plan_schedule import PlanSchedule, lead_periods

STALE_ACTIONS = ('zero', 'hold')

# (obs [S], elapsed) -> (actions [H, A], predicted states [H, S] on demand or None, model value)
Act = Callable[[np.ndarray, int], tuple[np.ndarray, Callable[[], np.ndarray] | None, float]]
# (obs [S], committed actions [n, A]) -> the state [S] after them
Predict = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class LoopConfig:
    lockstep: bool = False  # the robot waits for each command: answer every state once
    latency_compensation: bool = True  # real time: plan from the state predicted for when the plan is ready
    min_lead: int = 0  # real time, with compensation: plan at least this many periods ahead
    stale_periods: float = 5.0  # state older than this many control periods is stale
    stale_action: str = 'zero'  # command while stale: zeros, or hold the last command
    latency_window: int = 500  # plans the latency percentiles (and the lead) cover

    def __post_init__(self):
        if self.stale_action not in STALE_ACTIONS:
            raise ValueError(f'stale_action must be one of {STALE_ACTIONS}, got {self.stale_action!r}')
        if not self.stale_periods > 0 or self.latency_window < 1 or self.min_lead < 0:
            raise ValueError('stale_periods and latency_window must be positive, min_lead not negative')


@dataclass(frozen=True)
class PlanRequest:
    obs: np.ndarray  # the state as received
    committed: np.ndarray | None  # actions [lead, A] the robot executes before the plan starts
    elapsed: int  # robot steps since the previous plan's start; 0: a new episode, nothing carries over
    lead: int  # periods between the state's receipt and the plan's start
    start: float  # when the plan's first action applies
    seq: int  # the sequence number of the state it answers
    asked_at: float


class ControlLoop:

    def __init__(self, task: TaskSpec, cfg: LoopConfig, act: Act, predict: Predict, logger, now: float):
        self.task, self.cfg = task, cfg
        self.period = task.control_period
        self.stale_after = cfg.stale_periods * task.control_period
        self._act, self._predict, self._logger = act, predict, logger
        self._check = InputCheck(logger, task)
        self._state = None  # (obs, stamp ns, sequence number, receipt time) of the latest valid state
        self._received = 0  # sequence number of the latest valid state
        self._answered = 0  # sequence number of the state the latest plan was made from
        self._schedule = PlanSchedule(task.control_period)  # real time: plans by their start
        self._answered_at = 0.0  # when the latest plan was finished
        self._previous = (None, 0)  # (stamp, lead) of the latest request: what the next plan's start follows
        self._lead = 0  # of the latest plan
        self._plan_value = float('nan')
        self._last_command = np.zeros(task.action_dim)
        self._answered_since_tick = False  # real time: a fresh plan's action went out since the last tick
        self._intervals = deque(maxlen=50)  # ns between recent state stamps: how fast the robot publishes
        self.stale, self._stale_reason = False, ''
        self._latency = deque(maxlen=cfg.latency_window)
        self.counts = dict(plans=0, commands=0, deadline_misses=0, stale_events=0, non_finite_actions=0)
        self._reported = dict(commands=0, time=now)

    # ---- inputs -------------------------------------------------------------------------------
    def odometry(self, msg) -> None:
        """Take a nav_msgs/Odometry: the base entries of the states that follow (task specs with a base)."""
        self._check.odometry(msg)

    def receive(self, msg, now: float) -> bool:
        """Take a JointState (read by its fields); False when it is invalid and dropped."""
        checked = self._check.state(msg)
        if checked is None:
            return False
        if self._state is not None and checked[1] > self._state[1]:
            self._intervals.append(checked[1] - self._state[1])
        self._received += 1
        self._state = (*checked, self._received, now)
        return True

    def tick(self, now: float) -> np.ndarray | None:
        """The control timer: the watchdog, and in real time the schedule's action when no plan answered this period."""
        if self._state is None:
            return None  # nothing to act on yet; silence also keeps a lockstep robot where it is
        if self.cfg.lockstep:
            waited = now - self._answered_at
            self._set_stale(self._answered == self._received and waited > self.stale_after,
                            f'no new /joint_states for {waited:.2f} s since the last command')
        else:
            state_age = now - self._state[3]
            start = self._schedule.latest_start
            plan_age = now - start if start is not None else 0.0
            silent = state_age > self.stale_after
            # A planner that stopped keeping up leaves a plan whose actions are long used up.
            stuck = plan_age > self.stale_after + self._schedule.latest_horizon * self.period
            self._set_stale(silent or stuck, f'no new /joint_states for {state_age:.2f} s' if silent
                            else f'the latest plan is {plan_age:.2f} s old: the planner is not keeping up')
        if self.stale:
            return self._command(np.zeros(self.task.action_dim) if self.cfg.stale_action == 'zero'
                                 else self._last_command)
        if self.cfg.lockstep:
            return None
        # The schedule's action for now, once per tick interval (a heartbeat for the command guard), unless a
        # plan that answered since the last tick already sent this very action. Only that one: a plan that
        # answers after a tick but for the period before must not silence the next period's fill-in.
        action = self._schedule.action_at(now)
        repeat = self._answered_since_tick and action is not None and np.array_equal(self._clip(action),
                                                                                     self._last_command)
        self._answered_since_tick = False
        return None if action is None or repeat else self._command(action)

    @property
    def due(self) -> bool:
        """A plan is due: a valid state arrived that no plan has answered yet and, in real time, it is a
        period on from the state last planned for (lockstep: every state is answered)."""
        return self._received > self._answered and (self.cfg.lockstep or self._a_period_on())

    def _a_period_on(self) -> bool:
        """Real time: the latest state is stamped a control period after the one last planned for (less half
        a state interval, so a 20 Hz robot is planned for at every state and a 1000 Hz one every 50 states),
        or starts over (a reset). Plans follow the states, not the timer: waiting for a tick would delay
        every plan by the timer's phase."""
        last = self._previous[0]
        if last is None:
            return True
        stamp, period_ns = self._state[1], self.period * 1e9
        interval = min(np.median(self._intervals), period_ns) if self._intervals else period_ns
        return stamp <= last or stamp - last >= period_ns - 0.5 * interval

    def request(self, now: float) -> PlanRequest:
        """The latest state to plan for (call when `due`), with the lead and the actions committed until then."""
        obs, stamp, seq, received = self._state
        lead, committed = 0, None
        # While stale the robot got zeros (or holds), not the schedule's actions: nothing to predict with.
        if self.cfg.latency_compensation and not self.cfg.lockstep and not self.stale:
            # A state that waited for a busy planner has less of the period left.
            lead = lead_periods(self._latency, self.period, self._schedule.latest_horizon, waited=now - received,
                                at_least=self.cfg.min_lead)
            committed = self._schedule.committed(received, lead)
        if committed is None:
            lead = 0  # nothing planned yet (a new episode): plan from the state as it is
        last_stamp, last_lead = self._previous
        if last_stamp is None or stamp <= last_stamp:
            elapsed = 0  # a new episode or a restarted robot: the previous plan does not apply
        else:  # periods between this plan's start and the previous one's
            elapsed = max(1, round((stamp - last_stamp) / (self.period * 1e9)) + lead - last_lead)
        self._previous = (stamp, lead)
        return PlanRequest(obs, committed, elapsed, lead, received + lead * self.period, seq, now)

    def plan(self, request: PlanRequest) -> tuple[np.ndarray, Callable[[], np.ndarray] | None, float]:
        """act() from the state predicted for the plan's start; touches no loop state, so it needs no lock."""
        obs = request.obs if request.committed is None else self._predict(request.obs, request.committed)
        return self._act(obs, request.elapsed)

    def answer(self, request: PlanRequest, actions: np.ndarray, value: float, now: float) -> np.ndarray | None:
        """Record a finished plan; the command it sends now, if any (in real time, None until it starts)."""
        latency = now - request.asked_at
        self._schedule.add(actions, request.start)
        self._plan_value, self._lead = value, request.lead
        self._answered, self._answered_at = request.seq, now
        self._latency.append(latency)
        self.counts['plans'] += 1
        self.counts['deadline_misses'] += latency > self.period
        if self.cfg.lockstep:
            return self._command(actions[0])
        if self.stale or now < self._schedule.latest_start:
            return None  # the timer's turn
        self._answered_since_tick = True
        return self._command(self._schedule.action_at(now))

    # ---- outputs ------------------------------------------------------------------------------
    def _clip(self, action) -> np.ndarray:
        return np.clip(np.asarray(action, np.float64), self.task.action_low, self.task.action_high)

    def _command(self, action) -> np.ndarray:
        """Within the actuator limits; a non-finite action becomes zeros and is counted."""
        command = self._clip(action)
        if not np.all(np.isfinite(command)):
            self.counts['non_finite_actions'] += 1
            command = np.zeros(self.task.action_dim)
        self._last_command = command
        self.counts['commands'] += 1
        return command

    def _set_stale(self, stale: bool, reason: str) -> None:
        if stale and not self.stale:
            self.counts['stale_events'] += 1
            self._check.restart()  # a restarted robot's clock may start over
            self._logger.error(f'{reason} (limit {self.stale_after:.2f} s): '
                               f'commanding {self.cfg.stale_action} until a fresh state is planned for')
        elif self.stale and not stale:
            self._logger.info('fresh state: resuming control')
        self.stale, self._stale_reason = stale, reason if stale else ''

    def status(self, now: float) -> tuple[str, str, dict]:
        """(level 'ok', 'warn' or 'error', message, metrics) since the previous call: the metrics are numbers
        (counts, rates, latencies; `shown` formats them for /diagnostics)."""
        fresh_drops, dropped = self._check.drops_since_report()
        rate = (self.counts['commands'] - self._reported['commands']) / (now - self._reported['time'])
        self._reported = dict(commands=self.counts['commands'], time=now)
        if self.stale:
            level, message = 'error', f'{self._stale_reason}: commanding {self.cfg.stale_action}'
        elif self._state is None:
            level, message = 'warn', 'waiting for /joint_states'
        elif fresh_drops:
            level, message = 'warn', f'dropped {fresh_drops} invalid messages'
        else:
            level, message = 'ok', 'ok'
        latency = np.array(self._latency) * 1e3
        p50, p99 = np.percentile(latency, [50, 99]) if len(latency) else (float('nan'), float('nan'))
        age = now - self._state[3] if self._state else float('nan')
        metrics = {'lockstep': self.cfg.lockstep, **self.counts,
                   'control_rate_hz': float(rate), 'latency_p50_ms': float(p50), 'latency_p99_ms': float(p99),
                   'lead_periods': self._lead, 'state_age_s': float(age), 'plan_value': float(self._plan_value),
                   'states_dropped': dropped, **self._check.dropped}
        return level, message, metrics


# Decimals /diagnostics shows of the float metrics: what a reader needs, not the float's noise.
SHOWN_DECIMALS = {'control_rate_hz': 2, 'latency_p50_ms': 2, 'latency_p99_ms': 2, 'state_age_s': 3, 'plan_value': 3}


def shown(metrics: dict) -> dict:
    """status()'s metrics as /diagnostics shows them (counts and flags as they are)."""
    return {k: f'{v:.{SHOWN_DECIMALS[k]}f}' if k in SHOWN_DECIMALS else v for k, v in metrics.items()}
