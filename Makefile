# `make run`: set up a virtualenv and train conditional MNIST on the bundled sample.
# `make test`: set up the same virtualenv and run the test suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup run test clean

$(VENV)/.installed: requirements.txt requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
	touch $@

setup: $(VENV)/.installed

run: setup
	$(PY) main.py --dataset mnist --input_height 28 --output_height 28 --train

# Two tests at a time (pytest-xdist; the tests that share a module's trained model on one of the
# two), then the ones marked serial alone: they time how soon workers notice a lost one.
test: setup
	$(PY) -m pytest -q -n 2 --dist loadgroup -m "not serial" tests
	$(PY) -m pytest -q -m serial tests

clean:
	rm -rf $(VENV) .pytest_cache
