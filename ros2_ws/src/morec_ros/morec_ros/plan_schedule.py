"""Which plan's action applies when, in real time, and what is already committed when a new plan starts.

A plan made from the state received at t0 is ready L seconds later. When the robot has stepped
meanwhile (L longer than the control period), a plan started at t0 has first actions for moments
already past, chosen for a trajectory the robot did not take: it kept executing the previous plan.
With a lead of n periods the controller instead plans from the state its model predicts for
t0 + n * period under the actions the schedule commits until then, and the new plan starts at that
moment. Until a plan starts, the one before it keeps commanding.
Times are seconds on one clock (the controller's steady clock).
"""

from __future__ import annotations

import numpy as np


class PlanSchedule:

    def __init__(self, period: float):
        self.period = period
        self._plans: list[tuple[float, np.ndarray]] = []  # (start, actions [H, A]) in start order

    def reset(self) -> None:
        self._plans = []

    def add(self, actions: np.ndarray, start: float) -> None:
        """A plan whose actions[0] applies from `start`; plans that start later than it are dropped."""
        self._plans = [p for p in self._plans if p[0] < start][-2:] + [(start, np.asarray(actions))]

    def action_at(self, t: float) -> np.ndarray | None:
        """The action for time t from the latest plan started by then (its last action once it runs out)."""
        for start, actions in reversed(self._plans):
            if t >= start:
                return actions[min(int((t - start) / self.period), len(actions) - 1)]
        return None

    def committed(self, t0: float, lead: int) -> np.ndarray | None:
        """The actions [lead, A] commanded at t0, t0 + period, ...; None for lead 0 or times without a plan."""
        actions = [self.action_at(t0 + i * self.period) for i in range(lead)]
        if not actions or any(a is None for a in actions):
            return None
        return np.stack(actions)

    @property
    def latest_start(self) -> float | None:
        return self._plans[-1][0] if self._plans else None

    @property
    def latest_horizon(self) -> int:
        return len(self._plans[-1][1]) if self._plans else 0


def lead_periods(latencies, period: float, horizon: int, waited: float = 0.0, at_least: int = 0) -> int:
    """Robot steps that pass between a state's receipt and its plan: the time the state `waited` for the
    planner plus the median recent planning time, in whole periods, rounded down (0 without measurements),
    raised to `at_least`, and at most horizon - 1 so the plan keeps an action of its own.

    Down, because a robot stepping at the control period acts on a state until its next step: a plan
    ready within the period still answers the state it was made from.
    """
    measured = int(np.floor((waited + np.median(latencies)) / period)) if len(latencies) else 0
    return min(max(measured, at_least), horizon - 1)
