# xscontainer: `make demo` runs the main job on the embedded lab, `make test` runs every test.
# Both install what they need (Debian packages, a pinned virtualenv); run them as root.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Python 3.6 is what XCP-ng 8.3 / XenServer 8 dom0 runs; the test machine has it under pyenv.
PYTHON36 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.6.*/bin/python3) $(shell command -v python3.6))
VENV36 := .venv36
RUNTIME_DIRS := lib plugins scripts

.PHONY: all deps deps36 test test-unit test-lab lint types py36-syntax check demo lab-up lab-down clean

all: test

deps:
	@tools/bootstrap apt
	@tools/bootstrap venv $(VENV) $(PYTHON) requirements/dev.txt

deps36:
	@test -n "$(PYTHON36)" || { echo "make: no Python 3.6 interpreter found (set PYTHON36=...)" >&2; exit 1; }
	@tools/bootstrap venv $(VENV36) $(PYTHON36) requirements/py36-oldest.txt

## test: every test (unit, simulator, integration on the lab), then lint, types and 3.6 syntax
test: deps
	$(PY) -m pytest tests
	$(MAKE) --no-print-directory check

test-unit: deps
	$(PY) -m pytest tests/unit

check: lint types py36-syntax

lint:
	$(VENV)/bin/ruff check .

types:
	$(VENV)/bin/mypy

py36-syntax:
	$(VENV)/bin/vermin -q -t=3.6- --no-tips --violations --eval-annotations $(RUNTIME_DIRS)

## demo: bring the lab up, run the main job against it, tear it down (KEEP=1 leaves it up)
demo: deps
	$(PY) tests/lab/demo $(if $(KEEP),--keep)

lab-up: deps
	$(PY) tests/lab/lab up

lab-down:
	$(PYTHON) tests/lab/lab down

clean:
	-$(PYTHON) tests/lab/lab down
	rm -rf $(VENV) $(VENV36) dist build .lab .mypy_cache .ruff_cache .pytest_cache
