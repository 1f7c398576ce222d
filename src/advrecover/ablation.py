"""Collect DVC experiments into one results row per setting (the ablations of Li, Angelov and Suri, Fig. 4 and Fig. 5).

The Makefile targets ``ablation-lambda`` and ``ablation-depth`` queue one ``dvc exp`` per
setting (``-S key=choice(...)`` grids) and run them; this module then reads ``dvc exp show``
and writes, per experiment of the grid, the varied parameters and the average accuracy over Clean
and the attacks of every defence it evaluated (``metrics/defences/<defence>.json``), seen and
unseen. An experiment belongs to the grid when every other parameter is the workspace's, or the
value a ``--fixed`` option gives it (the grid's constant ``-S``): other experiments kept in the
repository (another ablation, a user's own) stay out of the table.

    python -m advrecover.ablation OUT.csv PARAM [PARAM ...] [--fixed KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys

import pandas as pd
import yaml

from .io import atomic_path


def _column(frame: pd.DataFrame, key: str) -> str | None:
    """The column of a param or metric key (``dvc exp show`` may prefix it with its file)."""
    return next((c for c in frame.columns if c == key or c.endswith(":" + key)), None)


def _per_defence(column: str) -> bool:
    """Whether a metric column comes from a defence's own file (``metrics/defences/<d>.json``). Its
    keys also appear in ``metrics/evaluate.json``, which DVC then names as a prefix; that file
    keeps the baseline's figures in an experiment that re-runs only some defences."""
    return ":" not in column or column.split(":")[0].startswith("metrics/defences/")


def _value(v):
    """A cell of ``dvc exp show --csv`` or a ``--fixed`` value as YAML reads it (None when empty)."""
    return None if pd.isna(v) else yaml.safe_load(str(v))


def _flat(params: dict, prefix: str = "") -> set[str]:
    """The dotted keys of a params dict, as ``dvc exp show`` names its columns (lists are values)."""
    out = set()
    for key, value in params.items():
        out |= _flat(value, f"{prefix}{key}.") if isinstance(value, dict) and value else {f"{prefix}{key}"}
    return out


def in_grid(frame: pd.DataFrame, keys: list[str], params: dict, fixed: dict) -> pd.Series:
    """Which rows hold, for every parameter outside ``keys``, the workspace's value or ``fixed``'s."""
    base = frame.loc[frame["rev"] == "workspace"].iloc[0]
    names, ok = _flat(params), pd.Series(True, index=frame.index)
    for col in frame.columns:
        key = col.split(":")[-1]
        if key in names and key not in keys:
            want = _value(fixed[key]) if key in fixed else _value(base[col])
            ok &= frame[col].map(lambda v: _value(v) == want)
    return ok


def experiments(show_csv: str, keys: list[str], params: dict | None = None, fixed: dict | None = None) -> pd.DataFrame:
    """One row per finished experiment of the grid (:func:`in_grid`, when ``params``, the
    workspace's, are given) in ``dvc exp show --csv`` output: its name, ``keys`` and the averages."""
    frame = pd.read_csv(io.StringIO(show_csv))
    columns = {k: _column(frame, k) for k in keys}
    missing = [k for k, c in columns.items() if c is None] + [k for k in fixed or {} if _column(frame, k) is None]
    if missing:
        raise ValueError(f"dvc exp show has no column for {missing}; is the parameter name right?")
    averages = [c for c in frame.columns if "accuracy." in c and c.endswith(".average") and _per_defence(c)]
    done = frame["Experiment"].notna() & (frame["State"].fillna("Success") == "Success")
    if params is not None:
        done &= in_grid(frame, keys, params, fixed or {})
    table = frame.loc[done, ["Experiment", *columns.values(), *averages]]
    table.columns = ["experiment", *keys, *(c.split(":")[-1].removeprefix("accuracy.") for c in averages)]
    names = table.columns[1 + len(keys):]
    table[names] = table[names].apply(pd.to_numeric, errors="coerce")  # DVC writes "!" for a missing file
    return table.dropna(axis=1, how="all").reset_index(drop=True)  # defences no experiment evaluated


def _fixed(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--fixed {text!r}: expected KEY=VALUE")
    return key, value


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m advrecover.ablation", description=__doc__.splitlines()[0])
    ap.add_argument("out", help="the CSV to write")
    ap.add_argument("keys", nargs="+", metavar="PARAM", help="the parameters the grid varies")
    ap.add_argument("--fixed", type=_fixed, action="append", default=[], metavar="KEY=VALUE",
                    help="a parameter every experiment of the grid sets to VALUE (its constant -S)")
    ap.add_argument("--params", default="params.yaml", help="the workspace's params file")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    show = subprocess.run(["dvc", "exp", "show", "--csv", "--force"], capture_output=True, text=True, check=True)
    with open(args.params) as fh:
        params = yaml.safe_load(fh)
    table = experiments(show.stdout, args.keys, params, dict(args.fixed))
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)
    print(table.to_markdown(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
