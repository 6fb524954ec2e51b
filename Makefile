# ragqa: `make run` (install + demo) and `make test` (install + tests) work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
# constraints.txt pins the CPU build of torch (see docs/installing.md for CUDA)
INSTALL := $(PIP) install --quiet --disable-pip-version-check -c constraints.txt
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

QUESTION ?= How many words does a passage have by default?
DATA     ?= ../shared/data

.PHONY: run test install install-test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(INSTALL) -e .
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(INSTALL) -e ".[test]"
	@touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

run: install
	$(BIN)/ragqa index docs/ --index-dir index
	$(BIN)/ragqa ask "$(QUESTION)" --index-dir index --answers 2

test: install-test
	$(BIN)/python -m pytest

bench: install-test
	$(BIN)/python bench/retrieval_speed.py --data $(DATA)
	$(BIN)/python bench/reader_speed.py --data $(DATA)

clean:
	rm -rf $(VENV) index/manifest.json index/gen-* index/.tmp-* index/.lock
