# xscontainer: `make demo` runs the main job on the embedded lab, `make test` runs every test.
# Both install what they need (Debian packages, a pinned virtualenv); run them as root.
# `make quick` (lint, types, 3.6 syntax, unit and simulator tests) runs as any user.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Python 3.6 is what XCP-ng 8.3 / XenServer 8 dom0 runs; the test machine has it under pyenv.
PYTHON36 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.6.*/bin/python3) $(shell command -v python3.6))
VENV36 := .venv36
RUNTIME_DIRS := lib plugins scripts
# the suites that need neither root nor a lab; those that do (marked `lab`), in one lab session
QUICK_TESTS := -m "not lab" tests/unit tests/xsclab
LAB_TESTS := tests/integration tests/xsclab/test_lab.py
# the engine matrix: one lab with a guest per engine (Docker 26 and 28, Podman 4, 5, 5 rootless)
ENGINE_TESTS := tests/engines

.PHONY: all deps venv deps36 quick test test-unit lint types py36-syntax check demo lab-up lab-down clean
.PHONY: test-source test-engines rpm iso install-root test-packaging test-installed test-py36

# Packaging (xscontainer.spec, packaging/): version from the package, RPMs and ISO in dist/.
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"$$/\1/p' lib/xscontainer/__init__.py)
DIST := dist
ISO := $(DIST)/xscontainer-$(VERSION).iso
# the RPMs installed with `rpm --root` for test-installed
INSTALL_ROOT := build/installroot
header = @printf '\n==== %s ====\n' $(1)

all: test

deps:
	@tools/bootstrap apt
	@tools/bootstrap venv $(VENV) $(PYTHON) requirements/dev.txt

# the virtualenv alone: no root, no Debian packages
venv:
	@tools/bootstrap venv $(VENV) $(PYTHON) requirements/dev.txt

deps36:
	@test -n "$(PYTHON36)" || { echo "make: no Python 3.6 interpreter found (set PYTHON36=...)" >&2; exit 1; }
	@tools/bootstrap venv $(VENV36) $(PYTHON36) requirements/py36-oldest.txt

## quick: what to run while editing, as any user (no root, no apt, no lab; makes .venv):
## lint, types, 3.6 syntax, then the unit and simulator tests
quick: venv
	$(MAKE) --no-print-directory check
	$(PY) -m pytest $(QUICK_TESTS)

## test: every test (unit, simulator, integration on the lab), then lint, types and 3.6 syntax,
## the packaging tests, the integration suite on the installed RPM, and the Python 3.6 run
test: deps deps36
	$(call header,"unit + simulator + integration (source tree)")
	$(MAKE) --no-print-directory test-source
	$(call header,"engine matrix: the engine-sensitive integration tests on each engine")
	$(MAKE) --no-print-directory test-engines
	$(call header,"lint + types + 3.6 syntax")
	$(MAKE) --no-print-directory check
	$(call header,"packaging: RPM + update ISO")
	$(MAKE) --no-print-directory test-packaging
	$(call header,"integration on the installed RPM")
	$(MAKE) --no-print-directory test-installed
	$(call header,"Python 3.6 with the oldest libraries")
	$(MAKE) --no-print-directory test-py36

# the tests that need no lab, then those that do (the lab's own and the integration suite)
test-source: deps
	$(PY) -m pytest $(QUICK_TESTS)
	$(PY) -m pytest $(LAB_TESTS)

## test-engines: prepare, diagnose, every Docker-backed plugin function, a state conflict,
## health and the monitor's events on each engine (tests/engines; the engines' Debian
## packages are fetched into /var/cache/xscontainer-lab/engines the first time)
test-engines: deps
	$(PY) -m pytest $(ENGINE_TESTS)

test-unit: venv
	$(PY) -m pytest tests/unit

check: lint types py36-syntax

lint: venv
	$(VENV)/bin/ruff check .

types: venv
	$(VENV)/bin/mypy

py36-syntax: venv
	$(VENV)/bin/vermin -q -t=3.6- --no-tips --violations --eval-annotations $(RUNTIME_DIRS)

## rpm: dist/xscontainer-VERSION-1.noarch.rpm and dist/xscontainer-pylibs-VERSION-1.x86_64.rpm
## from the committed tree (git archive HEAD), rpmlint-clean
rpm: deps deps36
	@PYTHON36=$(VENV36)/bin/python3 PIP=$(VENV)/bin/pip DIST=$(DIST) packaging/build-rpm

## iso: the supplemental pack dist/xscontainer-VERSION.iso (GPG_KEY=<key id> signs it)
iso: rpm
	$(PY) packaging/build_pack.py --out $(ISO) $(if $(GPG_KEY),--gpg-key '$(GPG_KEY)') \
	    $(DIST)/xscontainer-$(VERSION)-*.noarch.rpm $(DIST)/xscontainer-pylibs-$(VERSION)-*.x86_64.rpm

## install-root: the RPMs installed into the scratch root $(INSTALL_ROOT) (scriptlets need
## systemd and a shell inside the root: not run; tests/packaging checks their text)
install-root: rpm
	rm -rf $(INSTALL_ROOT) && mkdir -p $(INSTALL_ROOT)
	rpm --root $(abspath $(INSTALL_ROOT)) --dbpath /var/lib/rpm -i --nodeps --noscripts \
	    $(DIST)/xscontainer-$(VERSION)-*.noarch.rpm $(DIST)/xscontainer-pylibs-$(VERSION)-*.x86_64.rpm \
	    2>&1 | { grep -v -e 'should not be used directly' -e 'assuming you know' || true; }

## test-packaging: build RPMs and ISO from a clean clone of HEAD and check them (tests/packaging)
test-packaging: deps deps36
	$(PY) -m pytest tests/packaging

## test-installed: the lab tests with plugin, package and programs from the installed RPM
## (built from HEAD, as CI's clean checkout: uncommitted changes are not in it)
test-installed: install-root
	XSC_LAB_INSTALL_ROOT=$(abspath $(INSTALL_ROOT)) $(PY) -m pytest $(LAB_TESTS)

## test-py36: unit tests on .venv36 (Python 3.6, oldest libraries); the lab tests with
## dom0 processes (plugin, monitor, prepare-vm) on .venv36's python3
test-py36: deps deps36
	@test -x $(VENV36)/bin/python3 || { echo "make: no python3 in $(VENV36)/bin" >&2; exit 1; }
	$(VENV36)/bin/python -m pytest tests/unit
	XSC_LAB_PYTHON_BIN=$(abspath $(VENV36)/bin) $(PY) -m pytest $(LAB_TESTS)

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
