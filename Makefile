# Two entry points, each sets everything up first (idempotent):
#   make demo   -> .venv + the main job on the embedded default (local Ray, CPU backends, sample clip)
#   make test   -> .venv + the test suite (LANEPIPE_DATA_DIR defaults to ../shared/data)
PY3 ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.lanepipe-installed
LANEPIPE_DATA_DIR ?= $(abspath ../shared/data)
export LANEPIPE_DATA_DIR

.PHONY: setup demo test lint clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PY3) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# CPU torch from the wheel on local disk; never torchvision (breaks transformers imports, DESIGN.md §8)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[sam2,cloud,dev,generative]'
	# sam2 ships only an sdist; build it against the installed torch without CUDA
	SAM2_BUILD_CUDA=0 $(PY) -m pip install -q --no-deps --no-build-isolation sam2==1.1.0
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/lanepipe run --stages all --edit preset:double-yellow-solid \
		--edit preset:no-markings --output runs

# headless Chromium for the report page test (Debian package; needs root, as on CI)
CHROMIUM := $(shell command -v chromium 2>/dev/null)

test: $(STAMP)
ifeq ($(CHROMIUM),)
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
endif
	$(VENV)/bin/pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check lanepipe tests benchmarks jobs
	$(VENV)/bin/mypy lanepipe

clean:
	rm -rf $(VENV) runs
