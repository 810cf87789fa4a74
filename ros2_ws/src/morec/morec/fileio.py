"""Atomic file writes: a crash mid-write never leaves a half-written artefact behind."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path in the target's directory; move it onto `path` only if the block succeeds.

    `suffix` keeps the extension for writers that insist on one (numpy adds ".npz", SB3 adds ".zip").
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{suffix}")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; artefacts are ordinary files
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_json(path: str | os.PathLike, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


class CsvLog:
    """Training-loss log, one row per call, flushed at once so a long run can be watched."""

    def __init__(self, path: str | os.PathLike | None, header: list[str], append: bool = False):
        """`append` continues an existing log (a resumed run) instead of starting a new one."""
        self.path = Path(path) if path else None
        if self.path and not (append and self.path.exists()):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("w", newline="") as f:
                csv.writer(f).writerow(header)

    def row(self, values: list) -> None:
        if self.path:
            with self.path.open("a", newline="") as f:
                csv.writer(f).writerow(values)


class ModelFileError(RuntimeError):
    """A model file is missing, unreadable or does not fit the task."""
