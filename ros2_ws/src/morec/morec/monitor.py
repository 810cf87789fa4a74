"""The sim-to-real gap monitor: does the learned model still describe the robot it is connected to?

Three signals score every real transition (s, a, s') the robot makes:

    dynamics_reward   r_D(s, a, s'), MOREC's consistency score (low = inconsistent)
    one_step_error    RMSE of the elite-mean prediction against s', each dimension divided by the
                      training data's std (high = the model is wrong here)
    disagreement      max over members of ||std||, the ensemble's own uncertainty at (s, a) (high = unfamiliar)

A signal alarms while the mean over its last `window` transitions is beyond its threshold. The
thresholds are calibrated on transitions of the robot the model was trained for (`calibrate`), and
the monitor's detection rate, false alarms and time to detect are measured on held-out nominal and on
perturbed runs (`evaluate`). `morec monitor` does both, in simulation or on a robot's recordings, and
writes the thresholds into the bundle's card, where the filter node reads them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from .dataset import Dataset
from .metrics import auc
from .rollout import DynamicsBackend, FilterConfig, FilteredDynamics, RewardBackend, Step

# Which way each signal goes when the model stops describing the robot.
HIGH_IS_BAD = {"dynamics_reward": False, "one_step_error": True, "disagreement": True}
SIGNALS = tuple(HIGH_IS_BAD)
# What the filter node alarms on by default (docs/results.md, gap monitor): the one-step error. The ensemble's
# disagreement also rises in unfamiliar but correctly modelled states, and r_D, which barely separates a changed
# robot from the nominal one, dipped below its calibrated threshold under an MPC controller on the nominal robot.
DEFAULT_ALARM_ON = ("one_step_error",)


def transition_signals(dynamics: DynamicsBackend, reward: RewardBackend | None, obs_scale: np.ndarray,
                       obs: np.ndarray, act: np.ndarray, next_obs: np.ndarray,
                       step: Step | None = None) -> dict[str, np.ndarray]:
    """Every signal for a batch of real transitions [B, S], [B, A], [B, S]: {name: [B]}.

    `step`: a FilteredDynamics step already taken from (obs, act), whose elite-mean prediction and
    disagreement are reused (the filter node's); without one the ensemble predicts them here.
    """
    obs, act, next_obs = (np.asarray(x, np.float32) for x in (obs, act, next_obs))
    if step is None:
        predictor = FilteredDynamics(dynamics, None, FilterConfig(mode="elite_mean"))
        step = predictor.step(obs, act, np.random.default_rng(0))  # elite mean: the rng draws nothing
    error = np.sqrt(np.mean(((step.expected_obs - next_obs) / obs_scale) ** 2, axis=-1))
    out = {"one_step_error": error, "disagreement": step.disagreement}
    if reward is not None:
        out["dynamics_reward"] = reward.score(obs, act, next_obs[:, None])[:, 0]
    return out


class GapMonitor:
    """Windowed means of the signals against their thresholds; a signal without a threshold only reports."""

    def __init__(self, thresholds: dict[str, float], window: int):
        if window < 1:
            raise ValueError(f"window must be positive, got {window}")
        unknown = set(thresholds) - set(SIGNALS)
        if unknown:
            raise ValueError(f"unknown signals {sorted(unknown)}; known: {SIGNALS}")
        self.thresholds, self.window = dict(thresholds), window
        self._recent = {name: deque(maxlen=window) for name in SIGNALS}

    def update(self, signals: dict[str, float]) -> list[str]:
        """Add one transition's signals; return the signals in alarm after it."""
        for name, value in signals.items():
            self._recent[name].append(float(value))
        return self.alarms()

    def means(self) -> dict[str, float]:
        return {name: float(np.mean(v)) if v else float("nan") for name, v in self._recent.items()}

    def alarms(self) -> list[str]:
        means = self.means()
        return [name for name, limit in self.thresholds.items()
                if len(self._recent[name]) == self.window and _beyond(name, means[name], limit)]


def _beyond(name: str, value, limit):
    return value > limit if HIGH_IS_BAD[name] else value < limit


def recorded_episodes(data: Dataset) -> list[dict[str, np.ndarray]]:
    """A dataset's episodes (a robot's recordings, or simulated runs) as {obs, act, next_obs} each."""
    ends = data.episode_ends() + 1
    return [{"obs": data.observations[a:b], "act": data.actions[a:b], "next_obs": data.next_observations[a:b]}
            for a, b in zip(np.r_[0, ends[:-1]], ends)]


def window_means(values: np.ndarray, window: int) -> np.ndarray:
    """Means of every full window of a 1-D series (what GapMonitor sees after each transition from the window-th on)."""
    if len(values) < window:
        return np.empty(0)
    c = np.cumsum(np.concatenate([[0.0], np.asarray(values, np.float64)]))
    return (c[window:] - c[:-window]) / window


@dataclass
class Calibration:
    window: int
    margin: float
    thresholds: dict[str, float]
    nominal_window_means: dict[str, dict[str, float]]  # per signal: median and the extreme seen


def calibrate(episodes: list[dict[str, np.ndarray]], window: int, margin: float = 0.25) -> Calibration:
    """Thresholds from transitions of the nominal robot, one dict of signal series per episode.

    Each threshold sits beyond the most extreme windowed mean seen, by `margin` times its distance
    from the median: no calibration window alarms, and the margin is the room left for held-out runs.
    """
    thresholds, stats = {}, {}
    for name in SIGNALS:
        means = np.concatenate([window_means(ep[name], window) for ep in episodes if name in ep])
        if not len(means):
            continue
        median = float(np.median(means))
        extreme = float(means.max() if HIGH_IS_BAD[name] else means.min())
        thresholds[name] = extreme + margin * (extreme - median)
        stats[name] = {"median": median, "extreme": extreme}
    if not thresholds:
        raise ValueError(f"no calibration episode has a full window of {window} transitions")
    return Calibration(window, margin, thresholds, stats)


def first_alarm(series: dict[str, np.ndarray], thresholds: dict[str, float], window: int,
                alarm_on: tuple[str, ...] = DEFAULT_ALARM_ON) -> dict[str, int | None]:
    """The transition count at which each signal first alarms, None if never; 'any' is the first of
    the `alarm_on` signals, the monitor's rule."""
    out = {}
    for name, limit in thresholds.items():
        means = window_means(series[name], window)
        hits = np.flatnonzero(means > limit if HIGH_IS_BAD[name] else means < limit)
        out[name] = int(hits[0]) + window if len(hits) else None
    found = [out[name] for name in alarm_on if out.get(name) is not None]
    out["any"] = min(found) if found else None
    return out


def false_alarms(nominal: list[dict[str, np.ndarray]], calibration: Calibration,
                 alarm_on: tuple[str, ...] = DEFAULT_ALARM_ON) -> dict:
    """How many episodes on the nominal robot raised the monitor's alarm, and on which signals: judged on
    runs the calibration did not see (another policy, other seeds), where every alarm is a false one."""
    first = [first_alarm(ep, calibration.thresholds, calibration.window, alarm_on) for ep in nominal]
    alarmed = [f for f in first if f["any"] is not None]
    return {"episodes": len(first), "episodes_alarmed": len(alarmed), "false_alarm_rate": len(alarmed) / len(first),
            "signals": sorted({name for f in alarmed for name in alarm_on if f.get(name) is not None})}


def evaluate(nominal: list[dict[str, np.ndarray]], perturbed: list[dict[str, np.ndarray]],
             calibration: Calibration, control_period: float, alarm_on: tuple[str, ...] = DEFAULT_ALARM_ON) -> dict:
    """Detection rate, false alarms and time to detect, per signal and for 'any' of the `alarm_on` signals.

    `nominal` must be held out from the calibration. Every episode starts on its robot, so time to
    detect counts from the first transition; it cannot be shorter than one window.
    """
    thresholds, window = calibration.thresholds, calibration.window
    names = [*thresholds, "any"]
    nominal_first = [first_alarm(ep, thresholds, window, alarm_on) for ep in nominal]
    perturbed_first = [first_alarm(ep, thresholds, window, alarm_on) for ep in perturbed]
    report = {}
    for name in names:
        detect = [f[name] for f in perturbed_first]
        found = [t for t in detect if t is not None]
        row = {"detection_rate": len(found) / len(perturbed),
               "false_alarm_rate": float(np.mean([f[name] is not None for f in nominal_first])) if nominal else None,
               "time_to_detect_steps_median": float(np.median(found)) if found else None,
               "time_to_detect_s_median": float(np.median(found)) * control_period if found else None,
               "time_to_detect_steps_max": int(max(found)) if found else None}
        if name != "any":
            flip = 1.0 if HIGH_IS_BAD[name] else -1.0  # AUC of "perturbed looks worse"
            row["transition_auc"] = auc(flip * np.concatenate([ep[name] for ep in perturbed]),
                                        flip * np.concatenate([ep[name] for ep in nominal]))
            row["threshold"] = thresholds[name]
            row["nominal_mean"] = float(np.mean(np.concatenate([ep[name] for ep in nominal])))
            row["perturbed_mean"] = float(np.mean(np.concatenate([ep[name] for ep in perturbed])))
        report[name] = row
    return report
