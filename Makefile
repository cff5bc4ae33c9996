# Two entry points for a fresh machine:  `make demo`  and  `make test`.
# Both create the virtual environment on first use (system packages, torch CPU build, the package).
# This development env keeps numpy 1 / pandas 2 (the stack of the published results); the package
# allows numpy 2 / pandas 3, which CI's second environment tests (scripts/ci_wheel_env.sh).
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-fast lint bench clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup_system.sh
	bash scripts/setup_system.sh
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]' 'numpy<2' 'pandas<3'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/dcase-fpd demo

test: setup
	$(PY) -m pytest -q -rs

lint: setup
	$(VENV)/bin/lint-imports

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

clean-venv:
	rm -rf $(VENV)
