# Two commands set up everything on a fresh machine:
#   make demo   — create .venv, install tli, run the whole study (tli run) on the embedded model and lexicon
#   make test   — create .venv, install tli with test tools, run the whole test suite
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
OUT ?= runs/demo-$(shell date +%Y%m%d-%H%M%S)

.PHONY: demo test install lint bench clean

$(BIN)/tli: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(BIN)/tli

install: $(BIN)/tli

demo: install
	$(BIN)/tli run --out $(OUT)

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

bench: install
	$(BIN)/python benchmarks/bench_scan.py
	$(BIN)/python benchmarks/bench_train.py

clean:
	rm -rf $(VENV) runs .pytest_cache
