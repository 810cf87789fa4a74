"""Reading and writing offline datasets in the community formats: D4RL HDF5 files and Minari datasets.

Everything becomes a `Dataset`, so the rest of morec sees one format. Minari is imported lazily: the
core (and the ROS nodes) must import without it, and only these functions need it.

Episode boundaries survive every conversion: a Minari episode, or a D4RL episode whose last
transition had to be dropped, that ends with neither flag set gets a timeout on its last transition,
as `Dataset.concatenate` does, so episodes never run into each other.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import gymnasium as gym
import h5py
import numpy as np
from gymnasium.envs.registration import EnvSpec

from .dataset import ARRAYS, ZIP_MAGIC, Dataset, DatasetError, describe_content, read_head

D4RL_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")
# Attributes that D4RL-style writers use to name the task a file came from.
ENV_ID_ATTRS = ("env_id", "env_name", "env")
# Keys `Dataset.save` computes for the file; they are recomputed, never carried across formats.
FILE_KEYS = ("format", "format_version", "transitions", "episodes", "fingerprint")


def read_d4rl_hdf5(path: str | Path, env_id: str | None = None) -> Dataset:
    """Read a D4RL-style HDF5 file (flat arrays in episode order) into a Dataset.

    Without a `next_observations` array, the next observation is the following row of the same
    episode, as in D4RL's `qlearning_dataset`. An episode's last transition has no such row (the next
    row is the following episode's reset), so it is dropped: terminal ones too, unlike D4RL, because a
    wrong s' would teach the dynamics model a teleport.
    `env_id` names the task when the file does not (or overrides what it says).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"D4RL dataset {path} not found")
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in D4RL_KEYS if not isinstance(f.get(k), h5py.Dataset)]
            if missing:
                raise DatasetError(f"{path}: missing arrays {missing} (a D4RL file has {list(D4RL_KEYS)})")
            keys = D4RL_KEYS + (("next_observations",) if isinstance(f.get("next_observations"), h5py.Dataset) else ())
            arrays = {k: f[k][()] for k in keys}
            env_id = env_id or _attr_env_id(f.attrs)
    except OSError as err:
        raise DatasetError(f"{path}: not a readable HDF5 file ({err})") from err
    if not env_id:
        raise DatasetError(f"{path}: the file names no task (attrs {list(ENV_ID_ATTRS)}); "
                           f"pass env_id (--env-id on the command line)")
    n = len(arrays["observations"])
    if n == 0:
        raise DatasetError(f"{path}: dataset is empty")
    for key, value in arrays.items():
        if len(value) != n:
            raise DatasetError(f"{path}: {key} has {len(value)} entries but observations has {n}")
    if "next_observations" not in arrays:
        arrays = _successor_rows(arrays)
    try:
        return Dataset(**arrays, metadata={"env_id": env_id, "source": f"d4rl-hdf5:{path}"})
    except DatasetError as err:
        raise DatasetError(f"{path}: {err}") from None


def _attr_env_id(attrs) -> str | None:
    for key in ENV_ID_ATTRS:
        if key in attrs:
            value = attrs[key]
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def _successor_rows(arrays: dict) -> dict:
    """Pair every row with the next one of its episode; drop each episode's last row."""
    terminals = np.asarray(arrays["terminals"]).astype(bool).reshape(-1)
    timeouts = np.asarray(arrays["timeouts"]).astype(bool).reshape(-1)
    ends = terminals | timeouts
    ends[-1] = True  # the final row has no successor whatever its flags say
    keep = np.flatnonzero(~ends)
    return {
        "observations": arrays["observations"][keep],
        "actions": arrays["actions"][keep],
        "rewards": np.asarray(arrays["rewards"]).reshape(-1)[keep],
        "next_observations": arrays["observations"][keep + 1],
        "terminals": np.zeros(len(keep), dtype=bool),
        "timeouts": ends[keep + 1],  # the row before a dropped end now ends its episode
    }


def _import_minari():
    try:
        import minari
    except ImportError as err:
        raise ImportError("Minari datasets need the minari package: `pip install minari` "
                          "(the base package; its jax-based [create] extra is not needed)") from err
    return minari


def read_minari(source: str | Path, env_id: str | None = None) -> Dataset:
    """Read a Minari dataset, by id (from MINARI_DATASETS_PATH, default ~/.minari/datasets) or by directory.

    The directory may be the dataset's own (holding `data/`) or its `data/` folder. The task comes from
    `env_id`, else the dataset's env spec, else the morec metadata an `export_minari` wrote.
    """
    minari = _import_minari()
    path = Path(source)
    try:
        if path.is_dir():
            data_dir = path / "data" if (path / "data").is_dir() else path
            mds = minari.MinariDataset(data_dir)
        else:
            mds = minari.load_dataset(str(source))
    except FileNotFoundError as err:
        raise FileNotFoundError(f"Minari dataset {source!r} not found locally ({err}); set MINARI_DATASETS_PATH, "
                                f"pass the dataset's directory, or fetch it with `minari download {source}`") from err
    except (ValueError, KeyError, OSError) as err:
        raise DatasetError(f"Minari dataset {source!r}: not readable ({type(err).__name__}: {err})") from err

    for role, space in (("observation", mds.observation_space), ("action", mds.action_space)):
        if not (isinstance(space, gym.spaces.Box) and len(space.shape) == 1):
            raise DatasetError(f"Minari dataset {source!r}: {role} space is {space}; morec reads only flat Box spaces")
    meta = dict(mds.storage.metadata.get("morec_metadata", {}))
    env_id = env_id or (mds.env_spec.id if mds.env_spec is not None else None) or meta.get("env_id")
    if not env_id:
        raise DatasetError(f"Minari dataset {source!r} has no env spec; pass env_id (--env-id on the command line)")

    parts = {k: [] for k in ARRAYS}
    for ep in mds.iterate_episodes():
        obs = np.asarray(ep.observations)
        if len(obs) != len(ep) + 1:
            raise DatasetError(f"Minari dataset {source!r}: episode {ep.id} has {len(obs)} observations "
                               f"for {len(ep)} steps (expected steps + 1)")
        if len(ep) == 0:
            continue
        terminals = np.asarray(ep.terminations, dtype=bool)
        timeouts = np.asarray(ep.truncations, dtype=bool).copy()
        timeouts[-1] |= ~terminals[-1]
        for key, value in zip(ARRAYS, (obs[:-1], ep.actions, ep.rewards, obs[1:], terminals, timeouts)):
            parts[key].append(np.asarray(value))
    if not parts["observations"]:
        raise DatasetError(f"Minari dataset {source!r} holds no transitions")
    meta.update(env_id=env_id, source=f"minari:{mds.id}")
    try:
        return Dataset(**{k: np.concatenate(v) for k, v in parts.items()}, metadata=meta)
    except DatasetError as err:
        raise DatasetError(f"Minari dataset {source!r}: {err}") from None


def export_minari(dataset: Dataset, dataset_id: str, *, author: str | None = None,
                  author_email: str | None = None, code_permalink: str | None = None,
                  description: str | None = None, algorithm_name: str | None = None) -> Path:
    """Write `dataset` as the Minari dataset `dataset_id` under MINARI_DATASETS_PATH; return its directory.

    Minari stores episodes as T+1 observations, so within an episode every next_observation must be
    the following observation (true of collected data, not of a shuffled subset). Spaces come from
    the Gymnasium env when `env_id` is registered (its action bounds are real), else unbounded Boxes.
    The morec metadata travels along, so `read_minari` gives back the same data and metadata.
    Only base minari is needed: episodes are handed over whole, so minari's jax-based collector
    (the `minari[create]` extra) is never used.
    """
    minari = _import_minari()
    from minari.storage import get_dataset_path

    env_id = dataset.metadata["env_id"]
    spec = gym.registry.get(env_id)
    if spec is not None:
        env = gym.make(spec)
        obs_space, act_space = env.observation_space, env.action_space
        env.close()
    else:
        obs_space = gym.spaces.Box(-np.inf, np.inf, (dataset.obs_dim,), np.float32)
        act_space = gym.spaces.Box(-np.inf, np.inf, (dataset.act_dim,), np.float32)
        try:
            spec = EnvSpec(id=env_id)
        except gym.error.Error:
            spec = None  # not a Gymnasium id: the env_id travels in morec_metadata only
    spec_json = spec.to_json() if spec is not None else None  # fails here, before anything is written
    if obs_space.shape != (dataset.obs_dim,) or act_space.shape != (dataset.act_dim,):
        raise DatasetError(f"{env_id} has observation/action shapes {obs_space.shape}/{act_space.shape} but the "
                           f"dataset has ({dataset.obs_dim},)/({dataset.act_dim},)")

    buffers = _episode_buffers(dataset)
    target = Path(get_dataset_path(dataset_id))
    if target.exists():
        raise FileExistsError(f"Minari dataset {dataset_id} already exists at {target}")
    meta = {k: v for k, v in dataset.metadata.items() if k not in FILE_KEYS}
    try:
        with warnings.catch_warnings():
            # Minari warns that env_spec/eval_env are unset; the env spec is written just below.
            warnings.filterwarnings("ignore", message=r".*(env_spec|eval_env).*")
            mds = minari.create_dataset_from_buffers(
                dataset_id, buffers, observation_space=obs_space, action_space=act_space,
                author=author, author_email=author_email, code_permalink=code_permalink,
                algorithm_name=algorithm_name or "morec",
                description=description or f"morec dataset {dataset.fingerprint()} ({env_id})")
        extra = {"morec_metadata": meta}
        if spec_json:
            extra["env_spec"] = spec_json
        mds.storage.update_metadata(extra)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)  # never leave a half-written dataset that blocks a retry
        raise
    return target


def _episode_buffers(dataset: Dataset) -> list:
    """Cut the flat transitions into Minari episodes of T actions and T+1 observations."""
    from minari.data_collector import EpisodeBuffer

    ends = dataset.episode_ends()
    is_end = np.zeros(len(dataset), dtype=bool)
    is_end[ends] = True
    broken = ~is_end[:-1] & np.any(dataset.next_observations[:-1] != dataset.observations[1:], axis=1)
    if broken.any():
        i = int(np.flatnonzero(broken)[0])
        raise DatasetError(f"transition {i}: next_observations differs from the following observation within an "
                           "episode; Minari stores episodes as observation sequences and cannot hold this data")
    buffers = []
    for start, end in zip(np.r_[0, ends[:-1] + 1], ends + 1):
        buffers.append(EpisodeBuffer(
            observations=np.concatenate([dataset.observations[start:end], dataset.next_observations[end - 1:end]]),
            actions=dataset.actions[start:end], rewards=dataset.rewards[start:end],
            terminations=dataset.terminals[start:end], truncations=dataset.timeouts[start:end]))
    return buffers


def load_dataset(source: str | Path, env_id: str | None = None) -> Dataset:
    """Open any dataset morec reads, told apart by content: a morec `.npz` (a zip archive), a D4RL HDF5 file,
    or a Minari dataset (its directory, or its id under MINARI_DATASETS_PATH).

    `env_id` names the task for sources that may lack one; a morec file must agree with it.
    """
    path = Path(source)
    if path.is_dir():
        return read_minari(path, env_id)
    if not path.exists():
        # A missing file keeps its own format's message; a name without an extension is a Minari id.
        if path.suffix.lower() == ".npz":
            return Dataset.load(path)
        if path.suffix:
            raise FileNotFoundError(f"dataset {path} not found")
        return read_minari(source, env_id)
    head = read_head(path)
    if head.startswith(ZIP_MAGIC):
        dataset = Dataset.load(path)
        if env_id and dataset.metadata["env_id"] != env_id:
            raise DatasetError(f"{source}: holds data of {dataset.metadata['env_id']}, not {env_id}")
        return dataset
    if h5py.is_hdf5(path):
        return read_d4rl_hdf5(path, env_id)
    raise DatasetError(f"{path}: not a readable morec dataset, D4RL HDF5 file or Minari dataset: "
                       f"{describe_content(head)}")
