# `make run`: set up a virtualenv and train conditional MNIST on the bundled sample.
# `make test`: set up the same virtualenv and run the test suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

TFJS_VENV ?= .venv-tfjs
TFJS_NODE ?= .tfjs-node

.PHONY: setup run test test-tfjs clean

$(VENV)/.installed: requirements.txt requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
	touch $@

setup: $(VENV)/.installed

run: setup
	$(PY) main.py --dataset mnist --input_height 28 --output_height 28 --train

# Two test files at a time (pytest-xdist; a file's tests on one worker, so a model its tests share
# is trained once: xdist_group marks are not honoured with pytest 9), then the ones marked serial
# alone: they time how soon workers notice a lost one.
test: setup
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not serial" tests
	$(PY) -m pytest -q -m serial tests

# TensorFlow.js: its converter pins an older TensorFlow (a virtualenv of its own), its runtime
# comes from npm; then the export tests' TensorFlow.js snippet runs (docs/REFERENCE.md).
$(TFJS_VENV)/.installed: requirements-tfjs.txt
	$(PYTHON) -m venv $(TFJS_VENV)
	$(TFJS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-tfjs.txt
	touch $@

$(TFJS_NODE)/.installed:
	npm install --silent --no-audit --no-fund --prefix $(TFJS_NODE) @tensorflow/tfjs@4.22.0
	touch $@

test-tfjs: setup $(TFJS_VENV)/.installed $(TFJS_NODE)/.installed
	$(PY) -m pytest -q tests/test_export.py -k tfjs \
	    --tfjs-converter $(TFJS_VENV)/bin/tensorflowjs_converter \
	    --tfjs-modules $(TFJS_NODE)/node_modules

clean:
	rm -rf $(VENV) $(TFJS_VENV) $(TFJS_NODE) .pytest_cache
