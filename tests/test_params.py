"""params.yaml and its schema: every error names the key, from the CLI and from the Snakefile."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from advrecover import params as params_mod
from advrecover.cli import main
from helpers import REPO, copy_repo, sh


def test_shipped_params_and_paper_free_defaults_are_valid():
    params_mod.load(REPO / "params.yaml")


@pytest.mark.parametrize("edit, message", [
    (lambda p: p["victim"].__setitem__("epochs", "ten"), "victim.epochs: 'ten' is not of type 'integer'"),
    (lambda p: p["victim"].__setitem__("epoch", 3), "victim: unknown key(s) 'epoch'"),
    (lambda p: p["sample"]["pools"]["test"].pop("n"), "sample.pools.test.n: required key is missing"),
    (lambda p: p["sample"]["pools"]["aae"].__setitem__("source", "coco"), "sample.pools.aae.path: required key is missing"),
    (lambda p: p["sample"]["pools"]["aae"].__setitem__("source", "mnist"), "sample.pools.aae.source"),
    (lambda p: p.__setitem__("device", "gpu0"), "device: 'gpu0' does not match"),
    (lambda p: p.pop("seed"), "seed: required key is missing"),
    (lambda p: p["attack"].__setitem__("label_pools", ["tset"]), "attack.label_pools.0: 'tset' is not one of"),
    (lambda p: p["purifiers"]["nrp"]["train"].__setitem__("features", "vgg19"), "purifiers.nrp.train.features"),
    (lambda p: p["robust_victim"].pop("epochs"), "robust_victim.epochs: required key is missing"),
])
def test_schema_errors_name_the_key(params, edit, message):
    edit(params)
    with pytest.raises(params_mod.ParamsError) as err:
        params_mod.validate(params)
    assert message in str(err.value)


def test_cli_stops_before_work_with_the_key(tmp_path, params, capsys):
    params["victim"]["lr"] = -1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    code = main(["sample", "--params", str(tmp_path / "params.yaml"), "--out", str(tmp_path / "pools"),
                 "--metrics", str(tmp_path / "m.json"), "--quiet"])
    assert code == 2 and "victim.lr" in capsys.readouterr().err
    assert not (tmp_path / "pools").exists()


def test_cli_reports_a_missing_params_file(tmp_path, capsys):
    assert main(["sample", "--params", str(tmp_path / "nope.yaml"), "--out", "x", "--metrics", "m"]) == 2
    assert "params file not found" in capsys.readouterr().err


def test_cli_names_the_parameter_behind_a_missing_dataset(tmp_path, params, capsys):
    params["sample"]["pools"]["aae"] = {"source": "imagefolder", "path": str(tmp_path / "absent"), "n": 4}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    code = main(["sample", "--params", str(tmp_path / "params.yaml"), "--out", str(tmp_path / "pools"),
                 "--metrics", str(tmp_path / "m.json"), "--quiet"])
    assert code == 2 and "sample.pools.aae.path: directory not found" in capsys.readouterr().err
    assert not (tmp_path / "pools").exists(), "no pool is drawn before every source is opened"


def test_snakemake_dry_run_names_a_missing_dataset_before_any_job(tmp_path, params):
    params["sample"]["pools"]["test"] = {"source": "imagenet_r", "path": str(tmp_path / "absent"), "n": 4}
    ws = copy_repo(tmp_path / "ws", params)
    res = sh(["snakemake", "-n"], ws, check=False)
    assert res.returncode != 0
    assert "sample.pools.test.path: directory not found" in res.stdout + res.stderr


@pytest.mark.parametrize("edit, expected", [
    (lambda p: p["victim"].__setitem__("batch_size", 0), ["instance['victim']['batch_size']", "less than the minimum of 1"]),
    (lambda p: p["victim"].__setitem__("colour", "red"), ["'colour' was unexpected"]),
])
def test_snakefile_validates_against_the_same_schema(tmp_path, params, edit, expected):
    edit(params)
    ws = copy_repo(tmp_path / "ws", params)
    res = sh(["snakemake", "-n"], ws, check=False)
    assert res.returncode != 0
    for text in expected:
        assert text in res.stdout + res.stderr


@pytest.mark.parametrize("edit, message", [
    (lambda p: p["recovery"]["train_on"].append("nope"), "recovery.train_on: ['nope'] are not in attack.run"),
    (lambda p: p["recovery"]["variants"].append("other"), "recovery.cae.other: missing"),
    (lambda p: p["recovery"]["aae"]["default"].__setitem__("widths", [8, 5]), "must end in the CAE's latent channels"),
    (lambda p: p["recovery"]["aae"]["default"].update(widths=[8, 4], kernel=5), "init_from_cae: needs widths"),
    (lambda p: p["recovery"]["cae"]["default"].__setitem__("patch", 3), "does not divide sample.image_size"),
    (lambda p: p["attack"].__setitem__("pools", ["test"]), "attack.pools: must include 'aae'"),
    (lambda p: p["evaluate"]["defences"]["cae_aae"].__setitem__("variant", "x"), "evaluate.defences.cae_aae.variant"),
    (lambda p: p["purifiers"]["nrp"]["train"].__setitem__("attack", "nope"), "purifiers.nrp.train.attack"),
    (lambda p: p["evaluate"]["defences"].__setitem__("nrp", {"method": "nrp", "purifier": "nope"}),
     "evaluate.defences.nrp.purifier"),
    (lambda p: p["evaluate"]["defences"].__setitem__("rev", {"method": "reversal", "tasks": {"jigsaw": 1.0}}),
     "evaluate.defences.rev.tasks: ['jigsaw'] are not heads under ssl.tasks"),
    (lambda p: p["adaptive"]["per_defence"].__setitem__("gone", {"n": 4}), "adaptive.per_defence: ['gone']"),
    (lambda p: p["report"].__setitem__("attack", "cw"), "report.attack: 'cw' is not in attack.run"),
    (lambda p: p["purifiers"]["nrp"]["train"].__setitem__("attack", "pgd_8"), "purifiers.nrp.train.attack: 'pgd_8' needs labels"),
    (lambda p: p["attack"]["instances"]["ssp"].__setitem__("method", "magic"), "attack.instances.ssp.method: unknown"),
    (lambda p: p["robust_victim"]["attack"].__setitem__("stepz", 3), "robust_victim.attack.stepz: pgd takes no"),
    (lambda p: p["purifiers"]["nrp"].__setitem__("widht", 3), "purifiers.nrp.widht: nrp takes no"),
    (lambda p: p["ssl"]["tasks"][next(iter(p["ssl"]["tasks"]))].__setitem__("method", "magic"), "ssl.tasks.*.method: unknown"),
    (lambda p: p["adaptive"]["attacks"]["apgd_ce"].__setitem__("method", "magic"), "adaptive.attacks.apgd_ce.method: unknown"),
    (lambda p: p["adaptive"]["per_defence"].__setitem__("none", {"attacks": {"sq": {"method": "square", "queries": 3}}}),
     "adaptive.per_defence.none.attacks.sq.queries: square takes no"),
    (lambda p: p["evaluate"]["defences"]["diffpure"].__setitem__("t_star", 50), "evaluate.defences.diffpure.t_star: 50 is"),
    (lambda p: p["diffusion"]["model"].__setitem__("groups", 3), "diffusion.model.groups: 3 must divide"),
    (lambda p: p["evaluate"]["defences"]["diffpure"].pop("steps"), "evaluate.defences.diffpure: diffpure needs"),
])
def test_recovery_cross_checks_name_the_key(params, edit, message):
    edit(params)
    with pytest.raises(params_mod.ParamsError, match=message.replace("(", r"\(").replace("[", r"\[").replace("*", r"\w+")):
        params_mod.cross_check(params)
        params_mod.check_methods(params)


def test_loading_params_imports_no_method_family(tmp_path, params):
    """params.load stays cheap (every job of the DAG loads the params; the Snakefile and each stage
    run the registry checks of check_methods, which import torch and every method family)."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    code = f"import sys; from advrecover import params; params.load({str(tmp_path / 'params.yaml')!r}); " \
           "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch' or m.count('.') == 1 and " \
           "m.startswith('advrecover.') and m.split('.')[1] in params.FAMILIES))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_snakemake_dry_run_names_an_unknown_method_of_a_purifier_training_attack(tmp_path, params):
    """Registry checks run when the params are loaded: ``snakemake -n`` stops before any job."""
    params["attack"]["instances"]["ssp"]["method"] = "magic"
    ws = copy_repo(tmp_path / "ws", params)
    res = sh(["snakemake", "-n"], ws, check=False)
    assert res.returncode != 0 and "attack.instances.ssp.method: unknown attack method 'magic'" in res.stdout + res.stderr


def test_cli_refuses_an_unknown_defence_method(tmp_path, params, capsys):
    params["evaluate"]["defences"]["cae_aae"]["method"] = "magic"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("evaluate", "adaptive"):  # the job of another defence refuses it too
        extra = ["--shard", "0", "--totals", str(tmp_path / "t.json")] if stage == "adaptive" \
            else ["--metrics", str(tmp_path / "m.json")]
        code = main([stage, "--params", str(tmp_path / "params.yaml"), "--defence", "none", "--pool", "p",
                     "--adversarial", "a", "--victim", "v", "--models", "m", "--out", str(tmp_path / "r"), *extra])
        assert code == 2 and "evaluate.defences.cae_aae.method: unknown defence 'magic'" in capsys.readouterr().err
