"""advrecover.ablation: one row per finished experiment of ``dvc exp show --csv``, the varied
parameters and the averages of the defences the experiments evaluated."""

import pytest

from advrecover.ablation import experiments

# What `dvc exp show --csv` prints when metrics/evaluate.json (the baseline's tables) and
# metrics/defences/cae_aae.json (re-run by each experiment) share a key: DVC prefixes both with their file.
# A defence the experiments did not evaluate (nrp) has its baseline figure and "!" (no file) in them.
SHOW = """Experiment,rev,typ,Created,parent,State,Executor,\
metrics/evaluate.json:accuracy.seen.cae_aae.average,metrics/defences/cae_aae.json:accuracy.seen.cae_aae.average,\
metrics/defences/cae_aae.json:accuracy.seen.cae_aae.clean,accuracy.unseen.cae_aae (mixed).average,\
accuracy.seen.nrp.average,recovery.cae.default.lambda1,recovery.aae.default.lambda2
,workspace,baseline,,,,,0.40,0.40,0.5,0.38,0.6,0.001,0.001
,main,baseline,,,,,0.40,0.40,0.5,0.38,0.6,0.001,0.001
exp-a,1111111,branch_base,,,Success,,0.40,0.31,0.4,0.30,!,0.0001,0.01
exp-b,2222222,branch_commit,,,Failed,,0.40,,,,!,0.1,0.1
exp-c,3333333,branch_commit,,,,,0.40,0.35,0.45,0.33,!,0.01,0.0001
"""


def test_rows_are_finished_experiments_with_the_per_defence_averages():
    table = experiments(SHOW, ["recovery.cae.default.lambda1", "recovery.aae.default.lambda2"])
    assert list(table["experiment"]) == ["exp-a", "exp-c"]
    assert list(table.columns) == ["experiment", "recovery.cae.default.lambda1", "recovery.aae.default.lambda2",
                                   "seen.cae_aae.average", "unseen.cae_aae (mixed).average"]
    assert list(table["seen.cae_aae.average"]) == [0.31, 0.35]  # not the baseline's 0.40 of evaluate.json
    assert table["recovery.cae.default.lambda1"].tolist() == [0.0001, 0.01]


def test_an_unknown_parameter_is_named():
    with pytest.raises(ValueError, match="recovery.cae.default.lambda9"):
        experiments(SHOW, ["recovery.cae.default.lambda9"])


def test_the_report_draws_fig_4_from_the_table(tmp_path):
    from advrecover.stages.report import ablations

    experiments(SHOW, ["recovery.cae.default.lambda1", "recovery.aae.default.lambda2"]).to_csv(
        tmp_path / "ablation-lambda.csv", index=False)
    drawn = {entry["command"]: entry["png"] for entry in ablations(tmp_path)}
    assert drawn["make ablation-lambda"] and drawn["make ablation-depth"] is None


# Two grids in one repository: lambda1 (init_from_cae at the workspace's true) and widths (with the
# constant -S init_from_cae=false); each table must hold its own grid's experiments only.
TWO_GRIDS = """Experiment,rev,typ,Created,parent,State,Executor,accuracy.seen.cae_aae.average,\
recovery.cae.default.lambda1,recovery.cae.default.widths,recovery.aae.default.init_from_cae,metrics.extra
,workspace,baseline,,,,,0.58,0.001,"[128, 64, 8]",True,1
lam-a,1111111,branch_base,,,Success,,0.43,0.1,"[128, 64, 8]",True,2
lam-b,2222222,branch_commit,,,Success,,0.57,0.0001,"[128, 64, 8]",True,3
dep-a,3333333,branch_commit,,,Success,,0.17,0.001,"[128, 64, 8]",False,4
dep-b,4444444,branch_commit,,,Success,,0.11,0.001,"[128, 64, 32, 8]",False,5
"""
PARAMS = {"recovery": {"cae": {"default": {"lambda1": 0.001, "widths": [128, 64, 8]}},
                       "aae": {"default": {"init_from_cae": True}}}}


def test_each_table_keeps_only_its_grid():
    lam = experiments(TWO_GRIDS, ["recovery.cae.default.lambda1"], PARAMS)
    assert list(lam["experiment"]) == ["lam-a", "lam-b"]
    depth = experiments(TWO_GRIDS, ["recovery.cae.default.widths"], PARAMS,
                        {"recovery.aae.default.init_from_cae": "false"})
    assert list(depth["experiment"]) == ["dep-a", "dep-b"]
    assert list(depth["seen.cae_aae.average"]) == [0.17, 0.11]


def test_an_unknown_fixed_parameter_is_named():
    with pytest.raises(ValueError, match="recovery.aae.default.init_from_cea"):
        experiments(TWO_GRIDS, ["recovery.cae.default.widths"], PARAMS, {"recovery.aae.default.init_from_cea": "false"})
