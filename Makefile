# Two commands on a fresh machine: `make demo` and `make test`. Each creates/updates .venv and installs first.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE = 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS = 1
export TOKENIZERS_PARALLELISM = false

.PHONY: install install-gpu lock-gpu check-deps browser test demo clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# The GPU set (vLLM 0.31 + DeepSpeed; transformers 5.17.0, see pyproject.toml), pinned by requirements/gpu.txt.
# For a GPU node; never run on our machines (no GPU). `make check-deps` resolves it without installing.
install-gpu: | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install -e ".[gpu,test]" -c requirements/gpu.txt

lock-gpu: install
	$(PY) requirements/resolve.py --update

check-deps: install
	$(PY) requirements/resolve.py

# The report test renders the study report in Debian's headless chromium; install it when we can (root + apt).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } ; } || \
	  echo "note: chromium not installed (needs root and apt-get); the report's browser test will skip"

test: install browser
	$(PY) -m pytest -q -ra $(PYTEST_ARGS)

demo: install
	$(VENV)/bin/scalpel demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
