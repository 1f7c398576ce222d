"""What a reader needs to trust or redo the figures: the code revision, the library versions and
the SHA-256 of every pool, victim, adversarial set and model behind them (the checksums the
stages themselves record, so a file fetched from a DVC remote can be compared by hand)."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

from ..io import sha256_file

LIBRARIES = ("torch", "torchvision", "torchattacks", "kornia", "numpy", "pandas", "h5py", "matplotlib",
             "snakemake", "dvc")
CODE = ("src", "workflow", "Snakefile", "dvc.yaml")  # what decides the results besides params.yaml


def revision(root: str | Path = ".") -> str:
    """The git commit of ``root`` when the page was built, marked when its code differs from it."""
    def git(*args) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no", "--", *CODE)
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return commit + (" with uncommitted changes to the code" if changed else "")


def versions() -> dict[str, str]:
    """Python's and each library's installed version ('not installed' where absent)."""
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {"python": platform.python_version(), **{name: version(name) for name in LIBRARIES}}


def checksums(paths: list[Path], timed: set[Path] = frozenset()) -> list[tuple[str, str, int, bool]]:
    """(path, SHA-256, bytes, timed) of each file; ``timed`` files record their own wall time (the
    adversarial sets), so their bytes, and checksum, differ between two runs of the same job."""
    return [(str(p), sha256_file(p), Path(p).stat().st_size, Path(p) in timed) for p in paths]
