"""Test helpers: tiny parameters, a throw-away copy of the repo, tiny on-disk images."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import re

import numpy as np
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PLUGIN_SRC = "examples/plugin/src"  # the example plugin (installed editable by `make install`)


def tiny_params() -> dict:
    """The tiny configuration (the overlay configs/tiny.yaml on params.yaml): the whole DAG runs in
    seconds on 2 CPU cores."""
    from advrecover import params

    return params.read(REPO / "configs/tiny.yaml")


def run_env(root: Path) -> dict:
    """Environment for subprocesses in a repo copy: its own src/ and its own copy of the example
    plugin's first (the installed plugin's entry points then load the copy), the venv's tools on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join([str(root / "src"), str(root / PLUGIN_SRC)])
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def sh(args, cwd: Path, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run a command in ``cwd`` with :func:`run_env`; on failure show its output."""
    res = subprocess.run(args, cwd=cwd, env=run_env(cwd), capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"{args} failed ({res.returncode}):\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}")
    return res


def copy_repo(dest: Path, params: dict) -> Path:
    """The tracked files of this repo (as a fresh clone has them) in ``dest``, a new git repo, with ``params``."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for rel in filter(None, files.split("\0")):
        src, dst = REPO / rel, dest / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        elif src.is_file():
            shutil.copy2(src, dst)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-qm", "workspace"], cwd=dest, check=True)
    return dest


def shared_dir(tmp_path_factory) -> Path:
    """The session's temporary directory that the pytest-xdist controller and every worker share."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def tiny_dag(tmp_path_factory, runner: str) -> Path:
    """A private copy of the tiny DAG, complete, as ``runner`` (``snakemake`` or ``dvc``) left it.

    The DAG runs once per test session per runner: the first caller builds it in the directory the
    pytest-xdist workers share, under a file lock, and every caller gets its own copy (file times
    kept, so the runner finds it up to date)."""
    import fcntl

    shared = shared_dir(tmp_path_factory)
    master = shared / f"tiny-dag-{runner}"
    with open(shared / f"tiny-dag-{runner}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (master / ".built").exists():
            shutil.rmtree(master, ignore_errors=True)
            copy_repo(master, tiny_params())
            sh(["snakemake", "--cores", "2"] if runner == "snakemake" else ["dvc", "repro"], master)
            (master / ".built").touch()
    dest = tmp_path_factory.mktemp(runner) / "ws"
    shutil.copytree(master, dest, symlinks=True, ignore=shutil.ignore_patterns(".built"))
    return dest


def all_outputs(ws) -> list[str]:
    """Every output file of every stage instance (outs, metrics and plots) as DVC itself reads dvc.yaml,
    a directory output as the files in it; the Snakemake translation (``advrecover.dag``) must name
    the same outputs."""
    from dvc.repo import Repo

    from advrecover import dag

    params = yaml.safe_load((ws / "params.yaml").read_text())
    ours = sorted(t for stage in dag.load_stages(ws / "dvc.yaml", params) for t in stage.targets)
    with Repo(str(ws)) as repo:
        theirs = sorted(o.def_path for stage in repo.index.stages for o in stage.outs)
    assert ours == theirs
    return [str(f.relative_to(ws)) for rel in theirs for f in ([ws / rel] if not (ws / rel).is_dir() else
                                                              sorted(p for p in (ws / rel).rglob("*") if p.is_file()))]


# The stages DVC runs at every repro (``always_changed`` in dvc.yaml: they stamp code DVC cannot see).
ALWAYS_CHANGED = {name for name, stage in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].items()
                  if stage.get("always_changed")}


def dvc_ran(ws) -> set[str]:
    """The stages a real ``dvc repro`` ran, but the one it runs every time (:data:`ALWAYS_CHANGED`)."""
    ran = set(re.findall(r"Running stage '([^']+)'", sh(["dvc", "repro"], ws).stdout))
    assert ALWAYS_CHANGED <= ran
    return ran - ALWAYS_CHANGED


def dvc_up_to_date(ws) -> bool:
    """``dvc status`` lists nothing but the stage it always runs (:data:`ALWAYS_CHANGED`)."""
    status = json.loads(sh(["dvc", "status", "--json"], ws).stdout)
    return status == {stage: ["always changed"] for stage in ALWAYS_CHANGED}


def snakemake_ran(ws) -> set[str]:
    """The jobs a real Snakemake run executed, as DVC stage addresses."""
    out = sh(["snakemake", "--cores", "2"], ws)
    return set(snakemake_jobs(out.stdout + out.stderr, ws))


def both_ran(snake: Path, dvc: Path) -> tuple[set[str], set[str]]:
    """:func:`snakemake_ran` in ``snake`` and :func:`dvc_ran` in ``dvc``, side by side (two workspaces,
    two processes: the time of the slower, not of both)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        ran = pool.submit(snakemake_ran, snake), pool.submit(dvc_ran, dvc)
        return ran[0].result(), ran[1].result()


def dependants(ws, stage: str) -> set[str]:
    """``stage`` and every stage downstream of it, from DVC's own graph."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(ws)) as repo:
        graph = repo.index.graph  # edges point from a stage to the stages it depends on
        node = next(n for n in graph if n.name == stage)
        return {n.name for n in nx.ancestors(graph, node)} | {stage}


def make(target: str, ws):
    """A Makefile target in a workspace, with this test run's environment (no reinstall)."""
    return sh(["make", "-o", "install", "-o", f"{BIN.parent}/.installed", target, f"VENV={BIN.parent}"], ws)


def snakemake_plans_nothing(ws) -> bool:
    out = sh(["snakemake", "-n"], ws)
    return "Nothing to be done" in out.stdout + out.stderr


TIMINGS = {"wall_time_s", "seconds_per_100"}  # the only content allowed to differ between two runs (README,
# "Reliability"): an attribute of adversarial sets, a column (CSV, markdown) or key (JSON) of the results,
# and in the report page the git revision and the checksums of the files holding a timing


def same_output(a: Path, b: Path) -> bool:
    """Byte-identical, or identical apart from the timings of :data:`TIMINGS`: HDF5 datasets and
    attributes, CSV columns, JSON keys, markdown table columns."""
    from advrecover.io import sha256_file

    if sha256_file(a) == sha256_file(b):
        return True
    readers = {".h5": _same_h5, ".csv": _same_csv, ".json": _same_json, ".md": _same_markdown, ".html": _same_html}
    return a.suffix in readers and readers[a.suffix](a, b)


def _same_h5(a: Path, b: Path) -> bool:
    import h5py
    import hdf5plugin  # noqa: F401  (registers the Blosc filter that adversarial sets are written with)

    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        if set(fa) != set(fb) or any(not np.array_equal(fa[k][...], fb[k][...]) for k in fa):
            return False
        attrs_a = {k: v for k, v in fa.attrs.items() if k not in TIMINGS}
        attrs_b = {k: v for k, v in fb.attrs.items() if k not in TIMINGS}
        return attrs_a.keys() == attrs_b.keys() and all(np.array_equal(attrs_a[k], attrs_b[k]) for k in attrs_a)


def _same_csv(a: Path, b: Path) -> bool:
    import pandas as pd

    fa, fb = (pd.read_csv(p, dtype=str, keep_default_na=False) for p in (a, b))
    return fa.drop(columns=TIMINGS, errors="ignore").equals(fb.drop(columns=TIMINGS, errors="ignore"))


def _same_json(a: Path, b: Path) -> bool:
    def strip(node):
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k not in TIMINGS}
        return [strip(v) for v in node] if isinstance(node, list) else node

    return strip(json.loads(a.read_text())) == strip(json.loads(b.read_text()))


def _same_markdown(a: Path, b: Path) -> bool:
    """Equal once the cells of every table column headed by a timing are blanked."""
    def masked(text: str) -> list[str]:
        out, timing = [], set()
        for line in text.splitlines():
            cells = line.split("|")
            if not line.startswith("|"):
                timing = set()
            elif any(c.strip() in TIMINGS for c in cells):
                timing = {i for i, c in enumerate(cells) if c.strip() in TIMINGS}
            elif timing:
                cells = ["" if i in timing else c for i, c in enumerate(cells)]
            out.append("|".join(cells))
        return out

    return masked(a.read_text()) == masked(b.read_text())


def _same_html(a: Path, b: Path) -> bool:
    """The report page: equal once the elements it marks volatile are emptied (the git revision, and
    the checksums of the files that record their own wall time)."""
    volatile = re.compile(r'(<(\w+) class="volatile">)[^<]*(</\2>)')
    return volatile.sub(r"\1\3", a.read_text()) == volatile.sub(r"\1\3", b.read_text())


SUMMARY: dict[str, str] = {}  # title -> table, printed at the end of the pytest run (conftest.py)


def save_image(path: Path, size=(24, 20), seed: int = 0) -> Path:
    """A small random RGB image in the format the suffix names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def corrupt_image(path: Path) -> Path:
    """A file with an image suffix whose content is not a decodable image (a truncated JPEG)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00garbage" * 8)
    return path


def snakemake_jobs(text: str, ws: Path) -> dict:
    """The jobs in Snakemake's output (a run or a dry run with -p), keyed like DVC's stage
    addresses (``rule`` or ``rule@v1-v2`` in matrix-key order): (command or None, inputs, outputs)."""
    from advrecover import dag

    stages = {s.name: s for s in dag.load_stages(ws / "dvc.yaml", yaml.safe_load((ws / "params.yaml").read_text()))}
    jobs = {}
    for block in re.split(r"\n(?=\[[^\]]+\]\n(?:local)?rule )", text):
        m = re.search(r"^(?:local)?rule (\S+):$", block, re.M)
        if not m or m.group(1) == "all":
            continue
        fields = dict(re.findall(r"^    (\w+): (.*)$", block, re.M))
        wildcards = dict(kv.split("=", 1) for kv in fields.get("wildcards", "").split(", ") if kv)
        name = m.group(1)
        address = name + ("@" + "-".join(wildcards[k] for k in stages[name].wildcards) if wildcards else "")
        cmd = re.search(r"^Shell command: (.*)$", block, re.M)
        jobs[address] = (cmd and cmd.group(1), sorted(fields.get("input", "").split(", ")),
                         sorted(fields["output"].split(", ")))
    return jobs


def write_adversarial_set(path: Path, images: np.ndarray, pool_checksum: str, victim_checksum: str = "v" * 64,
                          labels=None, attack: str = "fake") -> Path:
    """An adversarial set in the on-disk format of the attack stage (float NHWC images in [0, 1])."""
    import h5py

    from advrecover.data import adversarial as fmt

    n, size = len(images), images.shape[1]
    labels = np.full(n, -1) if labels is None else np.asarray(labels)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        fmt.create(f, n, size, "float32", max(1, n))
        f["images"][...] = images.astype(np.float32)
        f["pool_index"][...] = np.arange(n)
        f["label"][...] = labels
        fmt.dump_attrs(f, {"attack": attack, "pool_checksum": pool_checksum, "victim_checksum": victim_checksum})
    return path
