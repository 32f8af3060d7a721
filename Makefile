# One command to set up and run the demo, one to set up and run the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test lint docs bench bench-quick clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/curate demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Lint and formatting as CI checks them (configuration in pyproject.toml; `ruff format .` applies it).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The docs site (mkdocs.yml; the home page is the README) into site/; --strict fails on a broken link,
# an unknown anchor or a page missing from the nav (not --quiet: with it mkdocs 1.6.1 exits 0 on
# strict warnings). CI runs it (.ci/run).
docs: $(STAMP)
	$(BIN)/mkdocs build --strict

# Same-run comparison with cleanlab, FiftyOne Brain and kNN on FERPlus (resumable; see docs/benchmark.md).
bench-quick: $(STAMP)
	$(BIN)/curate bench ../shared/data/ferplus-mini/labels.csv --quick --out runs/bench-quick

bench: $(STAMP)
	$(BIN)/curate bench ../shared/data/ferplus/labels.csv --out runs/bench --plots docs/bench
	cp runs/bench/results.md runs/bench/results.json docs/bench/

clean:
	rm -rf $(VENV) runs .pytest_cache site
