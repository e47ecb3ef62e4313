# Two commands a user needs: `make demo` and `make test`. Both are idempotent.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.fedsynth-installed

.PHONY: setup demo test test-faults lint clean

# torch==2.13.0 first: the CPU build on this machine; an unpinned torch would pull CUDA.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	# Anonymeter (re-identification risks in report.md) pins numpy < 1.27, which it does
	# not need: installed without its pins; numba and polars come with fedsynth's deps.
	$(BIN)/python -m pip install --quiet --no-deps "anonymeter==1.1.0"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/fedsynth simulate

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# Long scenarios (minutes each): faults with real SuperLink/SuperNode processes, the
# deployment of images (make test deploys a table), two simulations into one ledger.
test-faults: $(STAMP)
	$(BIN)/python -m pytest -q -m faults

clean:
	rm -rf $(VENV) runs .pytest_cache
