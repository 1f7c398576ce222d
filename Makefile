# advrecover: the two commands of the README, and a few helpers.
#   make run   - install into .venv if needed, run the whole DAG on the built-in data, print metrics
#   make test  - install into .venv if needed, run the test suite (the real DAG on a tiny config)

VENV    ?= .venv
PYTHON  ?= python3
CORES   ?= all
# The torch build to install first (override for your cluster's CUDA, e.g. TORCH="torch torchvision").
TORCH   ?= torch==2.14.1 torchvision==0.29.1
# torchattacks without its metadata's requests~=2.25.1 pin (it never imports requests; see README).
TORCHATTACKS ?= torchattacks==3.5.1
PYTEST_ARGS ?=

BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: install run report docs browser servers test test-portable clean-stale dry-run lint bench clean ablation-lambda ablation-depth handoff push pull

install: $(VENV)/.installed

# The example plugin (examples/plugin: a defence and a classifier from outside src/advrecover, which
# the tiny configuration and so the tests deploy) is installed editable, as a user installs their own.
$(VENV)/.installed: pyproject.toml examples/plugin/pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(TORCH)
	$(BIN)/pip install --no-deps $(TORCHATTACKS)
	$(BIN)/pip install -e '.[dev]'
	$(BIN)/pip install --no-deps -e examples/plugin
	touch $@

# One torch thread per job, two jobs side by side on two cores (advrecover.device): imports, Python
# and small kernels no longer leave a core idle. On a 2-core Xeon the quick DAG's 79 jobs took
# 25 min this way, where one 2-thread job at a time had done 55 of them in 38 min; the tiny DAG
# 73 s against 126 s. Its bits no longer depend on the core count either: `ADVRECOVER_THREADS=1 dvc
# repro` reproduces them. A value you set wins.
run test ablation-lambda ablation-depth: export ADVRECOVER_THREADS ?= 1
run: install
	snakemake --cores $(CORES)
	@python -m advrecover.outputs summary

# Snakemake's own report of a finished run (either runner; README, "The report"): every output
# marked with report() in workflow/rules/, with its caption, in one zip (open report.html inside).
report: install
	snakemake --report results/report.zip
	@echo "Snakemake's report: $(abspath results/report.zip); the page of the report stage: $(abspath results/report.html)"

# The documentation site (docs/, mkdocs.yml) at http://127.0.0.1:8000; `make test` builds it with --strict.
docs: install
	mkdocs serve

# Debian's chromium for the report page's browser test (tests/test_results.py), installed when
# missing and this user may (root); the test says why it skips where there is none.
browser:
	@command -v chromium > /dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null && \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null; } || \
	  echo "chromium not installed: the report's browser test will be skipped"; }

# Debian's OpenSSH server for the SSH remote's tests (tests/test_remotes.py, which start and stop their
# own sshd on a free localhost port), installed when missing and this user may (root); they skip,
# saying why, where there is none. The S3 tests' server (moto) comes with the dev extras.
servers:
	@test -x /usr/sbin/sshd || { [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null && \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server > /dev/null 2>&1 || \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server > /dev/null; }; } || \
	  echo "openssh-server not installed: the SSH remote's tests will be skipped"; }

# Outputs that the current params no longer produce (e.g. an attack removed from attack.run):
# listed, then removed. Never while a run is going on.
clean-stale: install
	python -m advrecover.outputs stale --remove

# Hand-off between the runners (never run both at once on one tree).
# After a Snakemake run: record every output in dvc.lock (and the DVC cache), so that `dvc status`
# lists only the always-changed stage plugins, `dvc repro` runs nothing else (that stage re-reads the
# plugins' code, under a second), and `make push` can share the results; `snakemake --touch`
# then restores the modification-time order that `dvc commit` disturbs.
handoff: install
	dvc commit --force --quiet
	snakemake --touch --cores 1 > /dev/null  # dvc commit rewrites outputs from its cache: new mtimes
	dvc status

push: handoff
	dvc push

# After cloning: fetch the shared outputs, then mark them up to date for Snakemake (it compares
# modification times, which a checkout does not preserve).
pull: install
	dvc pull
	snakemake --touch --cores 1 > /dev/null

# Ablations of Li, Angelov and Suri, Fig. 4 (lambda1 x lambda2) and Fig. 5 (CAE x AAE depth) as DVC experiments:
# one queued experiment per setting, ABLATION_JOBS at a time (one torch thread each); `dvc exp show` then has
# one row each (advrecover.ablation keeps the grid's: the others' parameters differ from it). An
# experiment re-runs the CAE, the AAEs and the evaluation of cae_aae (its target, the stage whose metrics
# the figures plot); every other stage comes from the run-cache of the baseline (`make handoff`).
ABLATION_JOBS ?= 2
ABLATE = dvc exp run --queue evaluate@cae_aae
ablation-lambda: install
	$(ABLATE) -S 'recovery.cae.default.lambda1=choice(0.0001,0.001,0.01,0.1)' \
	          -S 'recovery.aae.default.lambda2=choice(0.0001,0.001,0.01,0.1)'
	dvc exp run --run-all --jobs $(ABLATION_JOBS)
	python -m advrecover.ablation results/ablation-lambda.csv recovery.cae.default.lambda1 recovery.aae.default.lambda2
	dvc repro --force --single-item report  # the page draws the new ablation figure

ablation-depth: install
	$(ABLATE) -S 'recovery.cae.default.widths=choice([128,64,8],[128,64,32,8],[128,64,64,32,8],[128,64,64,64,32,8])' \
	          -S 'recovery.aae.default.widths=choice([128,64,8],[128,64,64,32,8],[128,64,64,64,64,32,8])' \
	          -S 'recovery.aae.default.init_from_cae=false'
	dvc exp run --run-all --jobs $(ABLATION_JOBS)
	python -m advrecover.ablation results/ablation-depth.csv recovery.cae.default.widths recovery.aae.default.widths \
	          --fixed recovery.aae.default.init_from_cae=false
	dvc repro --force --single-item report

# Two pytest workers, a test file each (module fixtures such as the tiny DAG run once); their DAG
# runs take one torch thread per job, as `make run`'s.
# In the test run, OpenMP threads that wait sleep instead of spinning: two workers (and their DAG
# jobs) share two cores, and a spinning torch thread burns the time another needs (same results;
# two tiny DAGs side by side ran 14% faster). A lone job runs faster spinning, so `make run` keeps
# OpenMP's default. A value you set wins.
test: export OMP_WAIT_POLICY ?= PASSIVE
test: install browser servers
	pytest -n 2 --dist loadfile $(PYTEST_ARGS)

# The unit tests (not the whole-DAG ones) under three settings that change the kernels torch
# uses, as another CPU does: generic ATen kernels, oneDNN capped at AVX2, and one thread on one
# CPU. Every test must pass under each (README, "Reliability").
ONE_CPU = taskset -c $$(python -c 'import os; print(min(os.sched_getaffinity(0)))')
test-portable: install
	ATEN_CPU_CAPABILITY=default pytest -m "not slow" -q $(PYTEST_ARGS)
	ONEDNN_MAX_CPU_ISA=AVX2 pytest -m "not slow" -q $(PYTEST_ARGS)
	OMP_NUM_THREADS=1 $(ONE_CPU) pytest -m "not slow" -q $(PYTEST_ARGS)

dry-run: install
	snakemake -n

lint: install
	snakemake --lint

bench: install
	python benchmarks/pipeline.py

clean:
	rm -rf data/pools data/adversarial models logs .snakemake metrics/*.json metrics/*.csv metrics/attack metrics/train results
