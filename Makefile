# advrecover: the two commands of the README, and a few helpers.
#   make run   - install into .venv if needed, run the whole DAG on the built-in data, print metrics
#   make test  - install into .venv if needed, run the test suite (the real DAG on a tiny config)

VENV    ?= .venv
PYTHON  ?= python3
CORES   ?= all
# The torch build to install first (override for your cluster's CUDA, e.g. TORCH="torch torchvision").
TORCH   ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=

BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: install run test dry-run lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(TORCH)
	$(BIN)/pip install -e '.[dev]'
	touch $@

run: install
	snakemake --cores $(CORES)
	dvc metrics show metrics/victim.json
	dvc metrics show metrics/attack

test: install
	pytest $(PYTEST_ARGS)

dry-run: install
	snakemake -n

lint: install
	snakemake --lint

bench: install
	python benchmarks/pipeline.py

clean:
	rm -rf data/pools models logs .snakemake metrics/*.json metrics/*.csv
