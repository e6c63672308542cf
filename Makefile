# Two commands for a fresh machine:  make run  (the app on http://localhost:8501)  and  make test.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8501
STAMP  := $(VENV)/.crev-installed

.PHONY: run test test-fast install init bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# torch is pinned to the CPU build on this machine's disk (any other spec pulls a CUDA build);
# torchattacks goes in last with --no-deps (its metadata drags in torchvision and a CUDA torch).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test]" --config-settings editable_mode=compat
	$(BIN)/pip install -q --no-deps torchattacks==3.5.1
	touch $(STAMP)

install: $(STAMP)

init: install
	$(BIN)/crev evidence init

run: init
	$(BIN)/crev app --port $(PORT)

test: install
	$(BIN)/python -m pytest

# Minutes instead of ten: everything but the tests that train a model or run a job, and the browser tests.
test-fast: install
	$(BIN)/python -m pytest -m "not slow and not browser"

bench: install
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python bench/evidence.py
	$(BIN)/python bench/meta.py
	$(BIN)/python bench/cli.py
	$(BIN)/python bench/replicate.py
	$(BIN)/python bench/app.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache test-artifacts
