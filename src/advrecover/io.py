"""Crash-safe file output and content checksums.

Every stage writes through :func:`atomic_path`: the data goes to a temporary name in the
target's directory and is renamed over the target only when complete, so a killed job never
leaves a file that looks finished (a rename within one filesystem is atomic on POSIX).
Every checkpoint is read through :func:`load_checkpoint`, which never runs code from the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import json
import os
import pickle
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success, delete it on error."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:  # a full disk, a quota: name the file; the previous target is untouched
        if exc.errno is None:
            raise
        raise OSError(exc.errno, f"writing {target} failed, previous version kept: {exc.strerror or exc}") from exc
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically (stable bytes for DVC metrics)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_csv_gz(path: str | os.PathLike, frame, float_format: str = "%.6g") -> None:
    """``frame`` as a gzipped CSV, atomically, with the same bytes on every write: no time stamp
    and no file name in the gzip header (pandas would store the temporary file's name)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as out:
        out.write(frame.to_csv(index=False, float_format=float_format).encode())


def config_digest(*parts) -> str:
    """SHA-256 of ``parts`` as key-sorted JSON: the identity of a configuration, recorded in a
    checkpoint or partial output so that a resumed job only continues its own work."""
    text = json.dumps(list(parts) if len(parts) > 1 else parts[0], sort_keys=True, default=dataclasses.asdict)
    return hashlib.sha256(text.encode()).hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


class UntrustedArtifact(ValueError):
    """A checkpoint holds more than tensors and plain containers, or is not a checkpoint at all."""


def load_checkpoint(path: str | os.PathLike, what: str) -> dict:
    """A torch checkpoint read with ``weights_only=True``: tensors, numbers, strings and plain
    containers only. Anything that arrives from a shared DVC remote is untrusted, and a full
    unpickle would run whatever code the file names; such a file is refused, naming ``what``
    (the parameter or artifact) and the path."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise UntrustedArtifact(f"{what}: refusing {path}: it holds objects other than tensors and plain "
                                f"containers, which could run code when loaded ({first[:200]})") from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise UntrustedArtifact(f"{what}: {path} is not a readable torch checkpoint (truncated or another "
                                f"format): {str(exc)[:200]}") from exc
    if not isinstance(state, dict):
        raise UntrustedArtifact(f"{what}: {path} holds a {type(state).__name__}, not a state dict")
    return state
