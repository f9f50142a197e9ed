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

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/driftline demo

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP) typecheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy cannot follow the editable install's folder mapping, so it checks a
# regular install of the package in a scratch folder.
typecheck: $(STAMP)
	rm -rf .cache/typecheck build
	$(BIN)/python -m pip install --quiet --no-deps --target .cache/typecheck .
	cd .cache/typecheck && ../../$(BIN)/mypy --config-file ../../pyproject.toml -p driftline

clean:
	rm -rf $(VENV) .cache build *.egg-info
