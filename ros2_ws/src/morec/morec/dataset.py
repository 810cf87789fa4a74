"""Offline datasets of transitions (s, a, r, s', terminal, timeout) and the project's file format.

Format (version 1): one `.npz` file holding the arrays below and a `metadata` entry, a JSON string
with at least {"format": "morec-dataset", "format_version": 1, "env_id": ...}. Arrays, N transitions:

    observations       float32 [N, S]
    actions            float32 [N, A]
    rewards            float32 [N]
    next_observations  float32 [N, S]
    terminals          bool    [N]   the task ended (no bootstrapping past it)
    timeouts           bool    [N]   the episode was cut by a time limit (the state is not terminal)

Transitions are stored in episode order; an episode ends at a terminal or a timeout.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .fileio import atomic_path

FORMAT = "morec-dataset"
FORMAT_VERSION = 1
ARRAYS = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")
# An .npz is a zip archive: its first bytes are a local file header, or an empty archive's end record.
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


class DatasetError(ValueError):
    """A dataset file or array set is malformed or inconsistent."""


@dataclass
class Dataset:
    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        self.observations = np.asarray(self.observations, dtype=np.float32)
        self.actions = np.asarray(self.actions, dtype=np.float32)
        self.rewards = np.asarray(self.rewards, dtype=np.float32).reshape(-1)
        self.next_observations = np.asarray(self.next_observations, dtype=np.float32)
        self.terminals = np.asarray(self.terminals).astype(bool).reshape(-1)
        self.timeouts = np.asarray(self.timeouts).astype(bool).reshape(-1)
        self.validate()

    def __len__(self) -> int:
        return len(self.observations)

    @property
    def obs_dim(self) -> int:
        return self.observations.shape[1]

    @property
    def act_dim(self) -> int:
        return self.actions.shape[1]

    def validate(self) -> None:
        """Raise DatasetError naming the first problem found."""
        if self.observations.ndim != 2 or self.actions.ndim != 2:
            raise DatasetError(
                f"observations and actions must be 2-D [N, dim]; "
                f"got {self.observations.shape} and {self.actions.shape}")
        n = len(self.observations)
        if n == 0:
            raise DatasetError("dataset is empty")
        for name in ARRAYS[1:]:
            length = len(getattr(self, name))
            if length != n:
                raise DatasetError(f"{name} has {length} entries but observations has {n}")
        if self.next_observations.shape != self.observations.shape:
            raise DatasetError(
                f"next_observations shape {self.next_observations.shape} "
                f"!= observations shape {self.observations.shape}")
        for name in ("observations", "actions", "rewards", "next_observations"):
            bad = ~np.isfinite(getattr(self, name))
            if bad.any():
                row = int(np.argwhere(bad)[0][0])
                raise DatasetError(f"{name} contains non-finite values (first at transition {row})")
        if "env_id" not in self.metadata:
            raise DatasetError("metadata lacks 'env_id' (which task produced the data)")

    # ---- views -------------------------------------------------------------------------------
    def subset(self, index: np.ndarray) -> "Dataset":
        return replace(self, **{k: getattr(self, k)[index] for k in ARRAYS}, metadata=dict(self.metadata))

    def episode_ends(self) -> np.ndarray:
        """Indices of the last transition of every episode (the final one ends the data)."""
        ends = self.terminals | self.timeouts
        ends[-1] = True
        return np.flatnonzero(ends)

    def episode_returns(self) -> np.ndarray:
        ends = self.episode_ends()
        sums = np.add.reduceat(self.rewards.astype(np.float64), np.r_[0, ends[:-1] + 1])
        return sums

    def fingerprint(self) -> str:
        """Short content hash: ties a trained model to the exact data it was fitted on."""
        h = hashlib.sha256()
        for name in ARRAYS:
            h.update(np.ascontiguousarray(getattr(self, name)).tobytes())
        return h.hexdigest()[:16]

    @staticmethod
    def concatenate(parts: list["Dataset"], metadata: dict) -> "Dataset":
        if not parts:
            raise DatasetError("cannot concatenate an empty list of datasets")
        dims = {(p.obs_dim, p.act_dim) for p in parts}
        if len(dims) != 1:
            raise DatasetError(f"cannot concatenate datasets of different dimensions: {sorted(dims)}")
        arrays = {k: np.concatenate([getattr(p, k) for p in parts]) for k in ARRAYS}
        # Close every part's last episode so episodes never run across parts.
        ends = np.cumsum([len(p) for p in parts]) - 1
        arrays["timeouts"][ends] |= ~arrays["terminals"][ends]
        return Dataset(**arrays, metadata=metadata)

    # ---- files -------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        if path.suffix != ".npz":
            raise ValueError(f"dataset files end in .npz, got {path}")
        meta = {**self.metadata, "format": FORMAT, "format_version": FORMAT_VERSION,
                "transitions": len(self), "episodes": int(len(self.episode_ends())),
                "fingerprint": self.fingerprint()}
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez_compressed(tmp, metadata=np.array(json.dumps(meta)), **{k: getattr(self, k) for k in ARRAYS})
        self.metadata = meta
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Dataset":
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"dataset {path} not found (make one with `morec collect`)")
        if path.is_dir():
            raise DatasetError(f"{path}: a directory, not a morec dataset (an .npz file)")
        head = read_head(path)
        if not head.startswith(ZIP_MAGIC):
            # np.load would take any other bytes for a pickle and complain about "pickled data".
            raise DatasetError(f"{path}: not a readable morec dataset: {describe_content(head)}, "
                               f"not a zip archive as a morec .npz is")
        try:
            with np.load(path, allow_pickle=False) as f:
                files = set(f.files)
                missing = [k for k in (*ARRAYS, "metadata") if k not in files]
                if missing:
                    raise DatasetError(f"{path}: missing arrays {missing}")
                meta = json.loads(str(f["metadata"]))
                arrays = {k: f[k] for k in ARRAYS}
        except DatasetError:
            raise
        # A truncated or corrupted .npz surfaces as a zip, zlib or EOF error rather than a ValueError.
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
            raise DatasetError(f"{path}: not a readable morec dataset ({type(err).__name__}: {err})") from err
        if not isinstance(meta, dict):
            raise DatasetError(f"{path}: metadata is a JSON {type(meta).__name__}, expected an object")
        if meta.get("format") != FORMAT:
            raise DatasetError(f"{path}: metadata format is {meta.get('format')!r}, expected {FORMAT!r}")
        if meta.get("format_version", 0) > FORMAT_VERSION:
            raise DatasetError(f"{path}: format version {meta['format_version']} is newer than this reader "
                               f"({FORMAT_VERSION}); upgrade morec")
        try:
            return cls(**arrays, metadata=meta)
        except ValueError as err:  # DatasetError, or arrays of a type that does not convert to float
            raise DatasetError(f"{path}: {err}") from None


def read_head(path: Path, size: int = 64) -> bytes:
    with open(path, "rb") as f:
        return f.read(size)


def describe_content(head: bytes) -> str:
    """What a file's first bytes say it is, for an error message about a file that is not a dataset."""
    if not head:
        return "the file is empty"
    if head.startswith(HDF5_MAGIC):
        return "an HDF5 file"
    if head.startswith(ZIP_MAGIC):
        return "a zip archive"
    text = head.decode("utf-8", "replace")
    # The last few bytes may cut a multi-byte character in two: they do not decide.
    if any(c == "\ufffd" or (c < " " and c not in "\t\n\r") for c in text[:-3]):
        return f"binary data beginning {head[:8].hex(' ')}"
    first = text.strip().splitlines()[0][:40] if text.strip() else ""
    return f"a text file beginning {first!r}"
