# One command to set up and run the demo, one to set up and run the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test lint docs docs-images bench bench-quick clean

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

# The App screenshots in docs/img from the demo's run (synthetic faces only: the test refuses any other image),
# taken by the real-browser test with Debian's chromium; the demo is trained once (--no-load: the test loads it
# into its own database).
DOCS_IMAGES := view-likely-mislabeled view-ambiguous view-given-sad review-panel sample relabel-form
docs-images: $(STAMP)
	test -f runs/demo/run/scores.parquet || $(BIN)/curate demo --no-load --out runs/demo
	rm -rf runs/docs-images && mkdir -p runs/docs-images docs/img
	CURATE_TEST_ARTIFACTS=$(CURDIR)/runs/docs-images CURATE_DOCS_SCORES=$(CURDIR)/runs/demo/run/scores.parquet \
		$(BIN)/python -m pytest -q -p no:warnings tests/fo/test_fo_browser.py -k docs
	for name in $(DOCS_IMAGES); do cp runs/docs-images/docs-screenshots/$$name.png docs/img/app-$$name.png; done

# Same-run comparison with cleanlab, FiftyOne Brain and kNN on FERPlus (resumable; see docs/benchmark.md).
bench-quick: $(STAMP)
	$(BIN)/curate bench ../shared/data/ferplus-mini/labels.csv --quick --out runs/bench-quick

bench: $(STAMP)
	$(BIN)/curate bench ../shared/data/ferplus/labels.csv --out runs/bench --plots docs/bench
	cp runs/bench/results.md runs/bench/results.json docs/bench/

clean:
	rm -rf $(VENV) runs .pytest_cache site
