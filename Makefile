# Two commands on a fresh machine: `make demo` and `make test`. Each creates/updates .venv and installs first.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE = 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS = 1
export TOKENIZERS_PARALLELISM = false

.PHONY: install test demo clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

test: install
	$(PY) -m pytest -q -ra $(PYTEST_ARGS)

demo: install
	$(VENV)/bin/scalpel microworld build --size demo

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
