"""The finished units of an adaptive job, kept beside its output so that a killed job resumes.

A unit is one run (clean, transfer, an attack through a route, a check) of one attacked model and
threat model on one batch: a pure function of that batch and its seed, so a unit finished before
a kill is loaded instead of recomputed and the resumed job writes the same bytes. Each unit is one
``.npz`` file written atomically under ``<output>.partial/``; the ``key`` file there ties the
directory to the job's exact configuration and inputs, and a directory of another configuration,
or a unit file that cannot be read, is discarded.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

import numpy as np

from ..io import atomic_path

log = logging.getLogger(__name__)


class Units:
    """The unit files of one job under ``directory``, for the configuration ``key``; counts the units
    it loaded (``resumed``) and computed (``computed``)."""

    def __init__(self, directory: str | Path, key: str):
        self.directory, self.resumed, self.computed = Path(directory), 0, 0
        key_file = self.directory / "key"
        if self.directory.exists() and (not key_file.is_file() or key_file.read_text() != key):
            log.info("discarding %s: another configuration's progress", self.directory)
            shutil.rmtree(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        if not key_file.is_file():
            with atomic_path(key_file) as tmp:
                tmp.write_text(key)

    def _path(self, name: str) -> Path:
        return self.directory / (hashlib.sha256(name.encode()).hexdigest()[:24] + ".npz")

    def get(self, name: str) -> dict | None:
        """The arrays of unit ``name`` when it finished before, else None."""
        path = self._path(name)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        except (OSError, ValueError, EOFError) as exc:
            log.warning("discarding unreadable unit %s (%s)", path, exc)
            path.unlink()
            return None
        if str(arrays.pop("unit")) != name:
            raise ValueError(f"{path}: holds another unit than {name!r} (a hash collision or a foreign file)")
        self.resumed += 1
        return arrays

    def put(self, name: str, arrays: dict) -> None:
        """Record unit ``name`` as finished, with its ``arrays``."""
        with atomic_path(self._path(name)) as tmp, open(tmp, "wb") as f:
            np.savez(f, unit=np.array(name), **arrays)
        self.computed += 1

    def remove(self) -> None:
        """Drop the directory once the job's outputs are written."""
        shutil.rmtree(self.directory, ignore_errors=True)
