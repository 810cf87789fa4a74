"""`morec report`: figures of a dataset, a model bundle or a recording, written as PNG files and one
self-contained HTML page (every image inlined as base64), drawn with matplotlib's Agg backend.

    dataset    coverage: a histogram per state and action dimension, against a reference dataset (the
               bundle's training data) when one is given, else against the bundle's normaliser (the mean
               and std of its training inputs, drawn as a normal density)
    bundle     training curves from the logs training leaves in the bundle (ensemble_log.csv,
               reward_log.csv, distill_log.csv), the card's hold-out error per ensemble member, and with
               data, open-loop state error against horizon for every rollout mode, filtered and not
    recording  predicted against actual state over a short window, r_D of the selected prediction and of
               the real transitions, and the gap monitor's windowed signals against their thresholds

Each section is drawn when its inputs are there; the others are listed with what they need.
"""

from __future__ import annotations

import base64
import csv
import html
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .bundle import CARD, ENSEMBLE_ONNX, ENSEMBLE_PT, read_card
from .dataset import HDF5_MAGIC, ZIP_MAGIC, Dataset, DatasetError, describe_content, read_head
from .fileio import atomic_path

TRAINING_LOGS = {  # log file: (x column, panels of y columns)
    "ensemble_log.csv": ("epoch", (("train_nll",), ("holdout_mse_mean", "holdout_mse_elites"))),
    "reward_log.csv": ("iteration", (("d_loss", "g_adv", "g_nll"), ("logit_data", "logit_model", "logit_noise"))),
    "distill_log.csv": ("step", (("mse_logit",), ("r_d_abs_error",))),
}
PREDICTION_TOPIC, SCORE_TOPIC, ERROR_TOPIC = "/morec/prediction", "/morec/dynamics_reward", "/morec/prediction_error"
DIAGNOSTICS_TOPIC = "/diagnostics"
MONITOR_STATUS = "consistency monitor"  # the filter node's status name ends with this
# The filter node's /diagnostics keys of the monitor's windowed means, by the signal they average.
MONITOR_KEYS = {"dynamics_reward": "real_score_mean", "one_step_error": "one_step_error_mean",
                "disagreement": "disagreement_mean"}
OUTSIDE_SIGMAS = 3.0  # coverage: a value this many normaliser stds from its mean is outside the training data


class ReportError(ValueError):
    """An input the report cannot use; the message says which and why."""


@dataclass
class Section:
    title: str
    images: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    table: tuple[list[str], list[list[str]]] | None = None


@dataclass
class Report:
    title: str
    sections: list[Section] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # sections not drawn, with what they need


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    _pyplot().close(fig)
    return path


# ---- what the input is -------------------------------------------------------------------------

def input_kind(path: str | Path) -> str:
    """'bundle', 'recording' or 'dataset' (a Minari id too); a ReportError for anything else."""
    from .mcap_import import MAGIC

    path = Path(path)
    if path.is_dir():
        if any((path / name).exists() for name in (CARD, ENSEMBLE_ONNX, ENSEMBLE_PT)):
            return "bundle"
        if (path / "metadata.yaml").is_file() or any(path.glob("*.mcap")):
            return "recording"
        return "dataset"  # a Minari dataset's directory; reading it says whether it is one
    if not path.exists():
        if path.suffix:
            raise FileNotFoundError(f"{path} not found")
        return "dataset"  # a Minari id
    head = read_head(path)
    if head.startswith(MAGIC):
        return "recording"
    if head.startswith(ZIP_MAGIC) or head.startswith(HDF5_MAGIC):
        return "dataset"
    raise ReportError(f"{path} is not a recording (MCAP), model bundle or dataset: {describe_content(head)}")


def load_data(source, env_id: str | None = None) -> Dataset:
    from .interop import load_dataset

    try:
        return load_dataset(source, env_id)
    except DatasetError as err:
        if Path(source).is_dir():
            raise ReportError(f"{source} is not a recording (no .mcap files), model bundle (no {CARD}, "
                              f"{ENSEMBLE_ONNX} or {ENSEMBLE_PT}) or dataset ({err})") from None
        raise


# ---- dataset: coverage -------------------------------------------------------------------------

def dimension_labels(env_id: str, obs_dim: int, act_dim: int) -> tuple[list[str], list[str]]:
    """Names of the state and action dimensions from the task spec, else s0.., a0.."""
    from .task_spec import TaskSpecError, load_task_spec

    try:
        task = load_task_spec(env_id)
    except TaskSpecError:
        task = None
    if task is None or (task.obs_dim, task.action_dim) != (obs_dim, act_dim):
        return [f"s{i}" for i in range(obs_dim)], [f"a{i}" for i in range(act_dim)]
    return ([f"{j} pos" for j in task.obs_positions] + [f"{j} vel" for j in task.obs_velocities],
            [a.name for a in task.actuators])


def bundle_normaliser(bundle: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean and std of the training inputs (state, then action) the bundle's ensemble normalises with."""
    if (bundle / ENSEMBLE_ONNX).exists():
        from .runtime import OnnxDynamics

        meta = OnnxDynamics(bundle / ENSEMBLE_ONNX, "cpu", 1).meta
        return np.asarray(meta["input_mean"]), np.asarray(meta["input_std"])
    if (bundle / ENSEMBLE_PT).exists():
        from .ensemble import EnsembleDynamics

        scaler = EnsembleDynamics.load(bundle / ENSEMBLE_PT).input_scaler
        return scaler.mean.numpy().ravel(), scaler.std.numpy().ravel()
    return None


def coverage_section(data: Dataset, out: Path, reference: Dataset | None = None,
                     normaliser: tuple[np.ndarray, np.ndarray] | None = None, name: str = "data") -> Section:
    """Histograms per state and action dimension; the share of values outside the reference's range or beyond
    OUTSIDE_SIGMAS normaliser stds."""
    plt = _pyplot()
    obs_labels, act_labels = dimension_labels(data.metadata["env_id"], data.obs_dim, data.act_dim)
    if reference is not None and (reference.obs_dim, reference.act_dim) != (data.obs_dim, data.act_dim):
        raise ReportError(f"the reference data has {reference.obs_dim} states and {reference.act_dim} actions, "
                          f"the data {data.obs_dim} and {data.act_dim}")
    if normaliser is not None and len(normaliser[0]) != data.obs_dim + data.act_dim:
        raise ReportError(f"the bundle was trained on {len(normaliser[0])} state and action dimensions, "
                          f"the data has {data.obs_dim + data.act_dim}")
    section = Section(f"Coverage of {name}")
    rows = []
    for kind, values, labels, offset in (("states", data.observations, obs_labels, 0),
                                         ("actions", data.actions, act_labels, data.obs_dim)):
        ref_values = None if reference is None else (reference.observations if kind == "states" else reference.actions)
        cols = min(len(labels), 6)
        grid = (len(labels) + cols - 1) // cols
        fig, axes = plt.subplots(grid, cols, figsize=(2.6 * cols, 2.1 * grid), squeeze=False)
        for i, ax in enumerate(axes.flat):
            if i >= len(labels):
                ax.set_axis_off()
                continue
            x = values[:, i]
            lo, hi = x.min(), x.max()
            if ref_values is not None:
                lo, hi = min(lo, ref_values[:, i].min()), max(hi, ref_values[:, i].max())
            bins = np.linspace(lo, hi, 41) if hi > lo else 1
            ax.hist(x, bins=bins, density=True, alpha=0.6, label=name)
            row = [labels[i], f"{x.mean():.3g}", f"{x.std():.3g}"]
            if ref_values is not None:
                r = ref_values[:, i]
                ax.hist(r, bins=bins, density=True, histtype="step", color="k", label="reference")
                row.append(f"{np.mean((x < r.min()) | (x > r.max())):.1%}")
            if normaliser is not None:
                mean, std = normaliser[0][offset + i], max(normaliser[1][offset + i], 1e-12)
                grid_x = np.linspace(min(lo, mean - 3 * std), max(hi, mean + 3 * std), 200)
                ax.plot(grid_x, np.exp(-0.5 * ((grid_x - mean) / std) ** 2) / (std * np.sqrt(2 * np.pi)),
                        color="C3", label="bundle normaliser")
                row.append(f"{np.mean(np.abs(x - mean) > OUTSIDE_SIGMAS * std):.1%}")
            ax.set_title(labels[i], fontsize=9)
            ax.tick_params(labelsize=7)
            rows.append(row)
        axes.flat[0].legend(fontsize=7)
        fig.suptitle(f"{name}: {kind} ({len(data)} transitions)", fontsize=10)
        fig.tight_layout()
        section.images.append(_save(fig, out / f"coverage_{kind}.png"))
    header = ["dimension", "mean", "std"]
    if reference is not None:
        header.append("outside the reference's range")
    if normaliser is not None:
        header.append(f"beyond {OUTSIDE_SIGMAS:g} std of the bundle's normaliser")
    section.table = (header, rows)
    against = [w for w, given in (("the reference data", reference is not None),
                                  ("the bundle's normaliser (its training data's mean and std)",
                                   normaliser is not None)) if given]
    section.notes.append(f"{len(data)} transitions, {len(data.episode_ends())} episodes of "
                         f"{data.metadata['env_id']}" + (f", against {' and '.join(against)}" if against else ""))
    return section


# ---- bundle: training and rollout error --------------------------------------------------------

def read_log(path: Path) -> dict[str, np.ndarray]:
    """A training log CSV as columns of floats (empty cells NaN)."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    return {k: np.array([float(r[k]) if r[k] not in ("", None) else np.nan for r in rows]) for k in rows[0]}


def training_section(bundle: Path, out: Path) -> Section | None:
    plt = _pyplot()
    section = Section(f"Training of {bundle}")
    for log_name, (x_name, panels) in TRAINING_LOGS.items():
        path = bundle / log_name
        if not path.is_file():
            continue
        try:
            log = read_log(path)
        except (ValueError, KeyError) as err:
            raise ReportError(f"{path}: not a training log ({err})") from None
        if not log:
            section.notes.append(f"{log_name} has no rows yet")
            continue
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.2), squeeze=False)
        for ax, columns in zip(axes.flat, panels):
            for column in columns:
                if column in log:
                    ax.plot(log[x_name], log[column], label=column)
            ax.set_xlabel(x_name)
            ax.legend(fontsize=8)
        fig.suptitle(log_name, fontsize=10)
        fig.tight_layout()
        section.images.append(_save(fig, out / f"training_{Path(log_name).stem}.png"))
    card = read_card(bundle)
    ensemble = card.get("ensemble", {})
    if ensemble.get("holdout_mse"):
        mse = np.asarray(ensemble["holdout_mse"])
        elites = set(_bundle_elites(bundle, mse))
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.bar(range(len(mse)), mse, color=["C0" if i in elites else "C7" for i in range(len(mse))])
        ax.set(xlabel="ensemble member (blue: elite)", ylabel="hold-out MSE (normalised)",
               title=f"ensemble after {ensemble.get('epochs', '?')} epochs")
        fig.tight_layout()
        section.images.append(_save(fig, out / "training_holdout_mse.png"))
    for part in ("ensemble", "dynamics_reward"):
        if "command" in card.get(part, {}):
            seconds = card[part].get("train_seconds")
            section.notes.append(f"{part}: `{card[part]['command']}`" + (f" ({seconds} s)" if seconds else ""))
    if not section.images:
        return None
    return section


def _bundle_elites(bundle: Path, mse: np.ndarray) -> list[int]:
    """The ensemble's elites as exported, else the members of lowest hold-out error (how training picks them)."""
    elites = read_card(bundle).get("ensemble", {}).get("config", {}).get("elites", len(mse))
    if (bundle / ENSEMBLE_ONNX).exists():
        from .runtime import OnnxDynamics

        return list(OnnxDynamics(bundle / ENSEMBLE_ONNX, "cpu", 1).meta["elites"])
    return np.argsort(mse)[:elites].tolist()


def rollout_section(bundle: Path, data: Dataset, out: Path, horizon: int, starts: int, seed: int = 0,
                    threads: int = 1) -> Section:
    """Open-loop state error against horizon along the data's recorded actions, one curve per rollout mode
    (diagnostics.open_loop), each dimension scaled by the bundle's normaliser as the filter node scales it."""
    from .diagnostics import error_curve, filter_models, load_backends, open_loop, segment_starts

    plt = _pyplot()
    dynamics, scorer, _ = load_backends(bundle, threads)
    if (dynamics.obs_dim, dynamics.act_dim) != (data.obs_dim, data.act_dim):
        raise ReportError(f"{bundle} models {dynamics.obs_dim} states and {dynamics.act_dim} actions, "
                          f"the data has {data.obs_dim} and {data.act_dim}")
    normaliser = bundle_normaliser(bundle)
    obs_scale = np.maximum(normaliser[1][: data.obs_dim], 1e-6)
    longest = int(np.diff(np.r_[-1, data.episode_ends()]).max())
    section = Section(f"Open-loop rollout error of {bundle}")
    if horizon > longest:
        section.notes.append(f"horizon cut from {horizon} to {longest} steps, the data's longest episode")
        horizon = longest
    first = segment_starts(data, horizon, starts, np.random.default_rng(seed))
    curves = {mode: error_curve(*open_loop(model, data, first, horizon, obs_scale, seed))
              for mode, model in filter_models(dynamics, scorer).items()}
    steps = np.arange(1, horizon + 1)
    fig, (ax, trust) = plt.subplots(1, 2, figsize=(10, 3.4))
    for mode, curve in curves.items():
        ax.plot(steps, curve["rmse"], label=f"{mode} (mean)")
        ax.plot(steps, curve["rmse_median"], ls="--", color=ax.lines[-1].get_color(), lw=0.8, label=f"{mode} (median)")
    ax.set(xlabel="horizon (model steps)", ylabel="state RMSE (normaliser stds)", yscale="log",
           title=f"{len(first)} rollouts along recorded actions")
    ax.legend(fontsize=7)
    trust.plot(steps, curves["filter"]["trusted_fraction"], color="C0")
    trust.set(xlabel="horizon (model steps)", ylabel="share of rollouts", ylim=(0, 1.05),
              title="filter: share not yet terminated")
    fig.tight_layout()
    section.images.append(_save(fig, out / "rollout_error.png"))
    section.table = (["mode", "RMSE at step 1", f"RMSE at step {horizon}"],
                     [[m, f"{c['rmse'][0]:.4g}", f"{c['rmse'][-1]:.4g}"] for m, c in curves.items()])
    section.notes.append(f"{len(first)} start states of {data.metadata.get('source', 'the data')} "
                         f"({data.metadata.get('policy', 'unknown policy')}), horizon {horizon}")
    return section


# ---- recording: closed loop --------------------------------------------------------------------

@dataclass
class Series:
    time: np.ndarray  # s since the recording's first message
    values: np.ndarray


def _times(messages, origin: int) -> np.ndarray:
    return (np.array([m.sent for m in messages], dtype=np.int64) - origin) / 1e9


def predicted_vs_actual(states, commands, predictions, task, origin: int) -> tuple[Series, Series]:
    """Each prediction against the state it predicts: the filter predicts from the latest state sent before the
    latest command, and the state one control period later (by header stamp, within half a period) is what
    happened. Returns the predictions and the actual states, both at the actual state's time."""
    states = sorted(states, key=lambda m: m.sent)
    state_sent = np.array([m.sent for m in states], dtype=np.int64)
    stamps = np.array([m.msg.header.stamp.sec * 10**9 + m.msg.header.stamp.nanosec for m in states], dtype=np.int64)
    command_sent = np.sort(np.array([m.sent for m in commands], dtype=np.int64))
    period = round(task.control_period * 1e9)
    times, predicted, actual = [], [], []
    for p in predictions:
        c = np.searchsorted(command_sent, p.sent, side="right") - 1
        if c < 0:
            continue
        i = np.searchsorted(state_sent, command_sent[c], side="left") - 1
        if i < 0 or i + 1 >= len(states) or abs(stamps[i + 1] - stamps[i] - period) > period / 2:
            continue
        if len(p.msg.data) != task.obs_dim:
            raise ReportError(f"a prediction of {len(p.msg.data)} values, but task {task.name} has {task.obs_dim} "
                              f"state dimensions: wrong --task?")
        next_state = states[i + 1].msg
        try:
            actual.append(task.observation_from_joint_state(next_state.name, next_state.position,
                                                            next_state.velocity))
        except ValueError as err:
            raise ReportError(f"the state at {(states[i + 1].sent - origin) / 1e9:.3f} s: {err}") from None
        times.append((states[i + 1].sent - origin) / 1e9)
        predicted.append(np.asarray(p.msg.data, dtype=np.float64))
    if not times:
        return Series(np.zeros(0), np.zeros((0, task.obs_dim))), Series(np.zeros(0), np.zeros((0, task.obs_dim)))
    t = np.asarray(times)
    return Series(t, np.stack(predicted)), Series(t, np.stack(actual))


def monitor_thresholds(bundle: Path | None) -> tuple[dict[str, float], float, str]:
    """The gap monitor's thresholds and the filter's r_D threshold, as the filter node takes them: the bundle's
    calibration (`morec monitor --write-card`), else r_D's default only."""
    from .rollout import FilterConfig

    calibrated = read_card(bundle).get("monitor", {}).get("calibration", {}) if bundle else {}
    limits = {k: float(v) for k, v in calibrated.get("thresholds", {}).items() if k in MONITOR_KEYS}
    source = f"calibrated in {bundle / CARD}" if limits else "not calibrated: the filter node's default for r_D"
    limits.setdefault("dynamics_reward", FilterConfig.threshold)
    return limits, FilterConfig.threshold, source


def recording_sections(path: Path, out: Path, task_name: str | None, bundle: Path | None, start: float | None,
                       window: float, dims: list[int] | None, recover: bool = False) -> tuple[list[Section], list[str]]:
    from .mcap_import import COMMAND_TOPIC, STATE_TOPIC, read_recording
    from .share import share_dir
    from .task_spec import load_task_spec

    plt = _pyplot()
    meta = read_recording(path, set(), recover=recover).metadata
    task_name = task_name or meta.get("task")
    if not task_name:
        raise ReportError(f"{path} does not name its task: pass --task")
    task = load_task_spec(task_name)
    if bundle is None and (share_dir("morec") / "models" / task.name).is_dir():
        bundle = share_dir("morec") / "models" / task.name  # what the filter node loads by default
    command_topic = meta.get("command_topic", COMMAND_TOPIC)
    topics = {STATE_TOPIC, command_topic, PREDICTION_TOPIC, SCORE_TOPIC, ERROR_TOPIC, DIAGNOSTICS_TOPIC}
    recording = read_recording(path, topics, recover=recover)
    if not recording.messages:
        raise ReportError(f"{path}: no messages on {sorted(topics)}")
    by_topic = {t: [m for m in recording.messages if m.topic == t] for t in topics}
    origin = min(m.sent for m in recording.messages)
    sections, skipped = [], []
    obs_labels, _ = dimension_labels(task.env_id, task.obs_dim, task.action_dim)

    predicted, actual = predicted_vs_actual(by_topic[STATE_TOPIC], by_topic[command_topic],
                                            by_topic[PREDICTION_TOPIC], task, origin)
    if len(predicted.time):
        begin = predicted.time[0] if start is None else start
        shown = (predicted.time >= begin) & (predicted.time <= begin + window)
        dims = dims if dims is not None else list(range(min(4, task.obs_dim)))
        bad = [d for d in dims if not 0 <= d < task.obs_dim]
        if bad:
            raise ReportError(f"--dims {bad}: task {task.name} has state dimensions 0..{task.obs_dim - 1}")
        if not shown.any():
            raise ReportError(f"no prediction between {begin:.2f} and {begin + window:.2f} s; the recording's "
                              f"predictions run from {predicted.time[0]:.2f} to {predicted.time[-1]:.2f} s")
        fig, axes = plt.subplots(len(dims), 1, figsize=(9, 1.9 * len(dims)), sharex=True, squeeze=False)
        for ax, d in zip(axes[:, 0], dims):
            ax.plot(actual.time[shown], actual.values[shown, d], "k.-", lw=1, ms=3, label="actual")
            ax.plot(predicted.time[shown], predicted.values[shown, d], "C1.--", lw=1, ms=3, label="predicted")
            ax.set_ylabel(obs_labels[d], fontsize=8)
        axes[0, 0].legend(fontsize=8)
        axes[-1, 0].set_xlabel("time into the recording (s)")
        fig.suptitle("filter's one-step prediction against the state the robot reached", fontsize=10)
        fig.tight_layout()
        error = np.abs(predicted.values - actual.values)
        section = Section("Predicted against actual state",
                          [_save(fig, out / "recording_prediction.png")],
                          [f"{len(predicted.time)} predictions paired with the state one control period later; "
                           f"shown {begin:.2f}-{begin + window:.2f} s"])
        section.table = (["dimension", "mean |predicted - actual|"],
                         [[obs_labels[d], f"{error[:, d].mean():.4g}"] for d in range(task.obs_dim)])
        sections.append(section)
    else:
        skipped.append(f"predicted vs actual: no {PREDICTION_TOPIC} paired with a {STATE_TOPIC} one control period "
                       f"after its command")

    limits, filter_threshold, source = monitor_thresholds(bundle)
    panels = []
    scores = by_topic[SCORE_TOPIC]
    if scores:
        values = np.array([list(m.msg.data)[:2] for m in scores], dtype=np.float64)
        panels.append(("r_D", _times(scores, origin),
                       {"selected prediction": values[:, 0], "last real transition": values[:, 1]},
                       {"filter threshold": filter_threshold}))
    monitor = [(m, s) for m in by_topic[DIAGNOSTICS_TOPIC] for s in m.msg.status
               if s.name.endswith(MONITOR_STATUS)]
    if monitor:
        t = _times([m for m, _ in monitor], origin)
        values = [{kv.key: kv.value for kv in s.values} for _, s in monitor]
        for signal, key in MONITOR_KEYS.items():
            series = np.array([float(v.get(key, "nan")) for v in values])
            if np.isfinite(series).any():
                threshold = {f"threshold ({'below' if signal == 'dynamics_reward' else 'above'}: gap)":
                             limits[signal]} if signal in limits else {}
                panels.append((f"monitor: {key}", t, {key: series}, threshold))
        warned = np.array([v.get("gap_warning") == "True" for v in values])
    if by_topic[ERROR_TOPIC]:
        errors = by_topic[ERROR_TOPIC]
        panels.append(("one-step prediction error (obs units)", _times(errors, origin),
                       {"dynamics node": np.array([m.msg.data for m in errors])}, {}))
    if panels:
        fig, axes = plt.subplots(len(panels), 1, figsize=(9, 2.0 * len(panels)), sharex=True, squeeze=False)
        for ax, (label, t, lines, thresholds) in zip(axes[:, 0], panels):
            for name, series in lines.items():
                ax.plot(t, series, lw=0.9, label=name)
            for name, value in thresholds.items():
                ax.axhline(value, color="C3", ls="--", lw=1, label=f"{name} {value:.4g}")
            if monitor and label.startswith("monitor") and warned.any():
                ax.fill_between(_times([m for m, _ in monitor], origin), 0, 1, where=warned, step="post", color="C3",
                                alpha=0.12, transform=ax.get_xaxis_transform(), label="gap warning")
            ax.set_ylabel(label, fontsize=8)
            ax.legend(fontsize=7, loc="best")
        axes[-1, 0].set_xlabel("time into the recording (s)")
        fig.suptitle("dynamics reward and the sim-to-real gap monitor", fontsize=10)
        fig.tight_layout()
        notes = [f"thresholds: {source}"]
        if monitor:
            notes.append(f"{int(warned.sum())} of {len(warned)} monitor reports warned of a sim-to-real gap")
        sections.append(Section("Dynamics reward and gap monitor", [_save(fig, out / "recording_monitor.png")], notes))
    else:
        skipped.append(f"r_D and monitor: no {SCORE_TOPIC}, {ERROR_TOPIC} or filter node {DIAGNOSTICS_TOPIC} "
                       f"messages (was the filter node running?)")
    return sections, skipped


# ---- the page ----------------------------------------------------------------------------------

def write_html(report: Report, path: Path) -> Path:
    """One page with every image inlined, so it can be mailed or attached as a single file."""
    e = html.escape
    parts = ["<!doctype html>", '<html><head><meta charset="utf-8">', f"<title>{e(report.title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:1em auto;padding:0 1em}img{max-width:100%}"
             "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #bbb;padding:2px 8px}</style>",
             "</head><body>", f"<h1>{e(report.title)}</h1>",
             f"<p>written {e(time.strftime('%Y-%m-%d %H:%M:%S'))}</p>"]
    for section in report.sections:
        parts.append(f"<h2>{e(section.title)}</h2>")
        parts += [f"<p>{e(note)}</p>" for note in section.notes]
        for image in section.images:
            data = base64.b64encode(image.read_bytes()).decode("ascii")
            parts.append(f'<p><img alt="{e(image.name)}" src="data:image/png;base64,{data}"></p>')
        if section.table:
            header, rows = section.table
            parts.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows]
            parts.append("</table>")
    if report.skipped:
        parts.append("<h2>Not drawn</h2><ul>" + "".join(f"<li>{e(s)}</li>" for s in report.skipped) + "</ul>")
    parts.append("</body></html>")
    with atomic_path(path, suffix=".html") as tmp:
        tmp.write_text("\n".join(parts) + "\n")
    return path


def make_report(source, out, bundle=None, reference=None, data=None, env_id=None, task=None, start=None,
                window: float = 5.0, dims=None, horizon: int = 50, starts: int = 100, recover: bool = False,
                threads: int = 1) -> tuple[Path, Report]:
    """Draw every section the inputs allow into `out`; return the HTML page's path and the report."""
    out = Path(out)
    bundle = Path(bundle) if bundle else None
    kind = input_kind(source)
    report = Report(f"morec report: {source} ({kind})")
    if kind == "bundle":
        bundle = Path(source)
    if bundle is not None and input_kind(bundle) != "bundle":
        raise ReportError(f"--bundle {bundle}: not a model bundle (no {CARD}, {ENSEMBLE_ONNX} or {ENSEMBLE_PT})")
    if kind == "recording":
        out.mkdir(parents=True, exist_ok=True)
        sections, skipped = recording_sections(Path(source), out, task, bundle, start, window, dims, recover)
        report.sections += sections
        report.skipped += skipped
    else:
        dataset = load_data(source, env_id) if kind == "dataset" else (load_data(data, env_id) if data else None)
        ref = load_data(reference, env_id) if reference and dataset is not None else None
        normaliser = bundle_normaliser(bundle) if bundle is not None else None
        out.mkdir(parents=True, exist_ok=True)
        if kind == "bundle":
            training = training_section(bundle, out)
            if training is not None:
                report.sections.append(training)
            else:
                report.skipped.append(f"training curves: {bundle} has no training logs or card metrics")
            if dataset is None:
                report.skipped.append("rollout error against horizon and coverage: pass --data")
        if dataset is not None:
            report.sections.append(coverage_section(dataset, out, ref, normaliser, Path(str(data or source)).name))
            if ref is None and normaliser is None:
                report.skipped.append("coverage against training data: pass --bundle or --reference")
            if bundle is not None:
                report.sections.append(rollout_section(bundle, dataset, out, horizon, starts, threads=threads))
    if not report.sections:
        raise ReportError(f"nothing to draw from {source}: {'; '.join(report.skipped)}")
    return write_html(report, out / "report.html"), report
