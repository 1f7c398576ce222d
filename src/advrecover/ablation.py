"""Collect DVC experiments into one results row per setting (the ablations of Li, Angelov and Suri, Fig. 4 and Fig. 5).

The Makefile targets ``ablation-lambda`` and ``ablation-depth`` queue one ``dvc exp`` per
setting (``-S key=choice(...)`` grids) and run them; this module then reads ``dvc exp show``
and writes, per experiment, the varied parameters and the average accuracy over Clean and the
attacks of every defence it evaluated (``metrics/defences/<defence>.json``), seen and unseen.

    python -m advrecover.ablation OUT.csv PARAM [PARAM ...]
"""

from __future__ import annotations

import io
import subprocess
import sys

import pandas as pd

from .io import atomic_path


def _column(frame: pd.DataFrame, key: str) -> str | None:
    """The column of a param or metric key (``dvc exp show`` may prefix it with its file)."""
    return next((c for c in frame.columns if c == key or c.endswith(":" + key)), None)


def _per_defence(column: str) -> bool:
    """Whether a metric column comes from a defence's own file (``metrics/defences/<d>.json``). Its
    keys also appear in ``metrics/evaluate.json``, which DVC then names as a prefix; that file
    keeps the baseline's figures in an experiment that re-runs only some defences."""
    return ":" not in column or column.split(":")[0].startswith("metrics/defences/")


def experiments(show_csv: str, keys: list[str]) -> pd.DataFrame:
    """One row per experiment of ``dvc exp show --csv`` output: its name, ``keys`` and the averages."""
    frame = pd.read_csv(io.StringIO(show_csv))
    columns = {k: _column(frame, k) for k in keys}
    missing = [k for k, c in columns.items() if c is None]
    if missing:
        raise ValueError(f"dvc exp show has no column for {missing}; is the parameter name right?")
    averages = [c for c in frame.columns if "accuracy." in c and c.endswith(".average") and _per_defence(c)]
    done = frame["Experiment"].notna() & (frame["State"].fillna("Success") == "Success")
    table = frame.loc[done, ["Experiment", *columns.values(), *averages]]
    table.columns = ["experiment", *keys, *(c.split(":")[-1].removeprefix("accuracy.") for c in averages)]
    names = table.columns[1 + len(keys):]
    table[names] = table[names].apply(pd.to_numeric, errors="coerce")  # DVC writes "!" for a missing file
    return table.dropna(axis=1, how="all").reset_index(drop=True)  # defences no experiment evaluated


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out, keys = args[0], args[1:]
    show = subprocess.run(["dvc", "exp", "show", "--csv", "--force"], capture_output=True, text=True, check=True)
    table = experiments(show.stdout, keys)
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False)
    print(table.to_markdown(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
