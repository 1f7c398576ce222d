"""advrecover.outputs: what `make run` summarises and what `make clean-stale` removes."""

from __future__ import annotations

import json
import shutil

import yaml

from advrecover import outputs
from helpers import copy_repo, tiny_params


def workspace(tmp_path):
    """A repo copy with the tiny params (attacks fgsm and pgd_8) and a few fake outputs."""
    ws = copy_repo(tmp_path / "ws", tiny_params())
    for committed in ("metrics", "results"):  # the default profile's, stale under the tiny params
        shutil.rmtree(ws / committed)
    files = {
        "metrics/victim.json": json.dumps({"accuracy": {"test": 0.9}}),
        "metrics/attack/test/fgsm.json": json.dumps({"success_rate": 0.25}),
        "metrics/attack/test/pgd_8.json": json.dumps({"success_rate": 0.5}),
        "metrics/attack/test/cw.json": json.dumps({"success_rate": 0.99}),  # cw is not in attack.run
        "data/adversarial/test/pgd_8/shard-0.h5.partial": "resume state of a current output",
        "data/adaptive/none/shard-0.csv.gz.partial/0123abcd.npz": "a finished unit of a current adaptive shard",
        "data/adaptive/none/shard-1.csv.gz.partial/4567ef01.npz": "a unit of a shard the params no longer have",
        "models/victim.ckpt": "resume state of a current output",
        "models/victim.pt.tmp-4242": "left by a killed job",
        "models/cae/old_variant.pt": "a variant no longer in recovery.variants",
        "results/report.zip": "made by `make report`, outside the DAG",
        "results/ablation-lambda.csv": "made by `make ablation-lambda`, outside the DAG",
    }
    for protocol in ("seen", "unseen"):
        files[f"results/{protocol}.md"] = f"# {protocol}\n\n## Accuracy\n\n| table |\n\n## PSNR\n\n| other |\n"
    for rel, text in files.items():
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_text(text)
    return ws


def test_stale_lists_what_the_current_dag_does_not_write(tmp_path):
    ws = workspace(tmp_path)
    assert outputs.stale(ws) == ["data/adaptive/none/shard-1.csv.gz.partial/4567ef01.npz", "metrics/attack/test/cw.json",
                                 "models/cae/old_variant.pt", "models/victim.pt.tmp-4242"]


def test_clean_stale_removes_them_and_keeps_current_and_resume_state(tmp_path, capsys):
    ws = workspace(tmp_path)
    assert outputs.main(["stale", "--remove", "--root", str(ws)]) == 0
    assert "removed metrics/attack/test/cw.json" in capsys.readouterr().out
    assert outputs.stale(ws) == []
    assert not (ws / "models/cae").exists(), "a directory left empty goes too"
    for rel in ("metrics/attack/test/fgsm.json", "data/adversarial/test/pgd_8/shard-0.h5.partial", "models/victim.ckpt",
                "data/adaptive/none/shard-0.csv.gz.partial/0123abcd.npz"):
        assert (ws / rel).exists(), rel


def test_summary_shows_current_outputs_only(tmp_path):
    ws = workspace(tmp_path)
    text = outputs.summary(ws)
    assert "fgsm" in text and "pgd_8" in text and "0.99" not in text and "cw" not in text
    assert "| table |" in text and "| other |" not in text  # the accuracy table of each protocol


def test_a_param_change_makes_outputs_stale(tmp_path):
    ws = workspace(tmp_path)
    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["attack"]["run"] = ["fgsm"]
    params["recovery"]["train_on"] = ["fgsm"]
    params["report"]["attack"] = "fgsm"  # the grid's attack must be one that runs
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert "metrics/attack/test/pgd_8.json" in outputs.stale(ws)
    assert "data/adversarial/test/pgd_8/shard-0.h5.partial" in outputs.stale(ws)
