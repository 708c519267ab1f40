# Two set-up commands (see README): `make demo` and `make test`.
# Both create .venv on first use.  torch is pinned to 2.13.0 for the bootstrap:
# a CPU build on the project's machines, the normal wheel elsewhere; an
# unpinned `pip install torch` would pull a multi-GB CUDA build where none is needed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0

.PHONY: demo test lint bench clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev,ray,bo,gbm]"
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/nas-engine search --strategy regularized-evolution --space nb201 --estimator tse-ema \
	    --data digits --evaluations 30 --epochs 5 --schedule-epochs 50 --C 16 --N 5 --batch-size 64 \
	    --lr 0.05 --seed 0 --out runs/demo

# lint-imports: the import layering contracts of setup.cfg ([importlinter])
test: $(VENV)/.installed
	$(VENV)/bin/lint-imports --no-logo
	$(PY) -m pytest -q -m "not slow and not ray" --timeout 600 -n auto --dist loadgroup
	$(PY) -m pytest -q -m "ray and not slow" --timeout 600

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check nas_engine tests benchmarks

bench: $(VENV)/.installed
	$(PY) benchmarks/overhead.py
	$(PY) benchmarks/executors.py

clean:
	rm -rf $(VENV) runs build *.egg-info
