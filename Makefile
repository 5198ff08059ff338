# Every target bootstraps .venv from the repo's own files; the stamp makes it idempotent.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test test-slow test-lmms lint demo bench bench-device released-sizes clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[torch,dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

# Two worker processes (pytest-xdist), one test file each at a time: XLA compiles mostly on one
# thread, so on 2 cores the suite runs ~1.35x faster than in one process.
test: $(STAMP) lint
	$(PY) -m pytest -q -n 2 --dist loadfile

# lmms-eval beside the project, in a venv of its own (~7 GB, a few minutes the first time): its
# pins (av<16, its ruff) differ from the main venv's. TOKCOMP_REQUIRE_LMMS: no skip when it is missing.
LMMS_VENV := .venv-lmms
LMMS_PY := $(LMMS_VENV)/bin/python
LMMS_STAMP := $(LMMS_VENV)/.installed

$(LMMS_STAMP): pyproject.toml
	test -x $(LMMS_PY) || $(PYTHON) -m venv $(LMMS_VENV)
	$(LMMS_PY) -m pip install -q --upgrade pip
	$(LMMS_PY) -m pip install -q -e '.[lmms,dev]'
	touch $(LMMS_STAMP)

test-lmms: $(LMMS_STAMP)
	TOKCOMP_REQUIRE_LMMS=1 $(LMMS_PY) -m pytest -q tests/lmms

# One process: several slow tests start multi-process runs of their own.
test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

demo: $(STAMP)
	$(PY) scripts/demo.py

bench: $(STAMP)
	$(PY) scripts/bench.py --out outputs/bench

# Qwen2-VL-7B shapes at full depth in bfloat16 on the first accelerator, transformers beside it on a GPU
# (~8 min on one GPU); on a TPU, JAX alone, its attention by splash.
bench-device: $(STAMP)
	$(PY) scripts/bench.py --config configs/bench/qwen2_vl.py:device --out outputs/bench-device

# Each family's smallest released size at full depth with random weights through the journey (convert --verify,
# evaluate, generate); one family at a time, its checkpoints deleted after it; a table in outputs/released-sizes.
released-sizes: $(STAMP)
	$(PY) scripts/released_sizes.py --out outputs/released-sizes

clean:
	rm -rf $(VENV) $(LMMS_VENV) outputs .pytest_cache .ruff_cache
