# Two entry points, each sets up only what it needs first (idempotent, one stamp per set of packages):
#   make demo   -> .venv with lanepipe's core dependencies (no torch, no extras), then the main job on the embedded
#                  default (local Ray, CPU backends, sample clip)
#   make test   -> the demo's .venv plus torch, the sam2, cloud, generative and dev extras, then the test suite
#                  (LANEPIPE_DATA_DIR defaults to ../shared/data)
PY3 ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_STAMP := $(VENV)/.lanepipe-demo
TEST_STAMP := $(VENV)/.lanepipe-test
LANEPIPE_DATA_DIR ?= $(abspath ../shared/data)
export LANEPIPE_DATA_DIR

.PHONY: setup demo test test-kernels lint clean

$(DEMO_STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PY3) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(TEST_STAMP): $(DEMO_STAMP)
	# CPU torch from the wheel on local disk; never torchvision (breaks transformers imports, DESIGN.md §8)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[sam2,cloud,dev,generative]'
	# sam2 ships only an sdist; build it against the installed torch without CUDA
	SAM2_BUILD_CUDA=0 $(PY) -m pip install -q --no-deps --no-build-isolation sam2==1.1.0
	touch $@

setup: $(TEST_STAMP)

# The sample clip has a double yellow centre line: paint markings it does not have, so the change shows.
demo: $(DEMO_STAMP)
	$(VENV)/bin/lanepipe run --stages all --edit preset:single-white-dashed \
		--edit preset:no-ego-lane-markings --output runs

# headless Chromium for the report page test (Debian package; needs root, as on CI)
CHROMIUM := $(shell command -v chromium 2>/dev/null)

test: $(TEST_STAMP)
ifeq ($(CHROMIUM),)
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
endif
	$(VENV)/bin/pytest -q -p no:cacheprovider

# The quantised-attention Triton kernels checked against their PyTorch reference under Triton's CPU interpreter
# (the CogVideoX processor tests then run through the kernels too).
# Not part of `make test`: triton is a 170 MB wheel (594 MB installed) that CPU torch does not need, so it goes
# to its own folder, outside the venv.
test-kernels: $(TEST_STAMP)
	test -d .triton || $(PY) -m pip install -q --target .triton triton==3.5.1
	TRITON_INTERPRET=1 PYTHONPATH=.triton $(VENV)/bin/pytest -q -p no:cacheprovider tests/test_qattn.py

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check lanepipe tests benchmarks jobs
	$(VENV)/bin/mypy lanepipe

clean:
	rm -rf $(VENV) runs .triton
