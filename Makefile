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

# Two test files at a time (pytest-xdist; a file's tests on one worker, so a model its tests share
# is trained once: xdist_group marks are not honoured with pytest 9), then the ones marked serial
# alone: they time how soon workers notice a lost one.
test: setup
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not serial" tests
	$(PY) -m pytest -q -m serial tests

clean:
	rm -rf $(VENV) .pytest_cache
