# Two entry points for a fresh machine (Python 3.11 + pip): `make demo` and `make test`.
# Each creates the virtual environment it needs in .venv (CPU-only torch, ~1.7 GB).
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test lint bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

demo: $(VENV)/.installed  ## fine-tune the bundled MiniLM on examples/data, print metrics and the report path
	$(VENV)/bin/lmkernel run examples/sentiment.yaml

test: $(VENV)/.installed  ## lint + the fast test suite (slow tests: make test PYTEST_ARGS="-m slow")
	$(VENV)/bin/ruff check src tests examples bench
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(VENV)/.installed  ## the SST-2 benchmark against HF Trainer (tens of minutes)
	$(PY) bench/classification.py

clean:
	rm -rf runs
