# The two commands of the README, and the checks every change passes.
#   make demo   local broker + worker + drifting traffic, alerts printed as they come
#   make test   the whole test suite, against a real Kafka broker it starts itself
#   make lint   ruff and mypy

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The repository root must never be on sys.path: our folders are named
# agents/, schemas/ and streams/, and must only be imported as driftline.*.
export PYTHONSAFEPATH := 1
export DRIFTLINE_BROKER_CACHE ?= $(CURDIR)/.cache/kafka

.PHONY: demo test lint typecheck clean

# Installed in strict editable mode: build/__editable__.driftline-*/driftline/ is a real
# package tree of links to the files in the root folders, which mypy and other static tools
# read as they read any package. A file added to (or removed from) a package folder needs a
# new tree: the stamp depends on the folders, whose times change when their entries do.
PACKAGE_FOLDERS := driftline driftline/kafka schemas monitors streams agents
EDITABLE_TREE = build/__editable__.driftline-*

$(STAMP): pyproject.toml Makefile $(PACKAGE_FOLDERS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	rm -rf build
	$(BIN)/python -m pip install --quiet -e '.[dev]' --config-settings editable_mode=strict
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/driftline demo

# Two processes, each with a broker of its own and whole test files (most of the slow tests
# wait on brokers and workers more than they compute), taken in the order tests/conftest.py
# puts them (the longest files first; xdist would put the files with most tests first);
# then, alone, the tests marked serial (see docs/developing.md, "Tests").
test: $(STAMP)
	$(BIN)/pytest -n 2 --dist loadfile --no-loadscope-reorder -m "not serial"
	$(BIN)/pytest -m serial

lint: $(STAMP) typecheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy reads the package as installed: the strict editable tree, links to the files here.
typecheck: $(STAMP)
	cd $(EDITABLE_TREE) && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml -p driftline

clean:
	rm -rf $(VENV) .cache build *.egg-info
