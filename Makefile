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
# Python 3.12 is what XCP-ng 9 dom0 runs (AlmaLinux 10); .venv312 has the newest libraries.
PYTHON312 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12.*/bin/python3) $(shell command -v python3.12))
VENV312 := .venv312
RUNTIME_DIRS := lib plugins scripts
# the suites that need neither root nor a lab; those that do (marked `lab`), in one lab session
QUICK_TESTS := -m "not lab" tests/unit tests/xsclab
LAB_TESTS := tests/integration tests/xsclab/test_lab.py
# the engine matrix: one lab with a guest per engine (Docker 26 and 28, Podman 4, 5, 5 rootless)
ENGINE_TESTS := tests/engines

.PHONY: all deps venv deps36 deps312 quick test test-unit lint types py36-syntax check demo lab-up
.PHONY: lab-down clean test-source test-quick test-engines rpm iso rpm-xcpng9 iso-xcpng9
.PHONY: install-root install-root-xcpng9 test-packaging test-installed test-py36 test-xcpng9

# Packaging (xscontainer.spec, packaging/): version from the package, RPMs and ISO in dist/.
# FLAVOUR=xs8 (default): XCP-ng 8.3 / XenServer 8 (Python 3.6): dist/*.rpm and
#   dist/xscontainer-VERSION.iso, installed into build/installroot;
# FLAVOUR=xcpng9: XCP-ng 9 (AlmaLinux 10, Python 3.12): dist/xcpng9/*.rpm and
#   dist/xscontainer-VERSION-xcpng9.iso, installed into build/installroot-xcpng9.
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"$$/\1/p' lib/xscontainer/__init__.py)
DIST := dist
FLAVOUR ?= xs8
ifeq ($(FLAVOUR),xcpng9)
RPM_DIST := $(DIST)/xcpng9
ISO := $(DIST)/xscontainer-$(VERSION)-xcpng9.iso
INSTALL_ROOT := build/installroot-xcpng9
FLAVOUR_VENV := deps312
else ifeq ($(FLAVOUR),xs8)
RPM_DIST := $(DIST)
ISO := $(DIST)/xscontainer-$(VERSION).iso
INSTALL_ROOT := build/installroot
FLAVOUR_VENV := deps36
else
$(error FLAVOUR is xs8 or xcpng9, not $(FLAVOUR))
endif
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

# .venv312: Python 3.12 (XCP-ng 9's) with the newest libraries (requirements/dev.txt)
deps312:
	@test -n "$(PYTHON312)" || { echo "make: no Python 3.12 interpreter found (set PYTHON312=...)" >&2; exit 1; }
	@tools/bootstrap venv $(VENV312) $(PYTHON312) requirements/dev.txt

## quick: what to run while editing, as any user (no root, no apt, no lab; makes .venv):
## lint, types, 3.6 syntax, then the unit and simulator tests
quick: venv
	$(MAKE) --no-print-directory check
	$(PY) -m pytest $(QUICK_TESTS)

## test: every test CI runs, in stages (each a target of its own). The integration suite
## (the lab tests) runs twice, each time on an installed pack, never from the source tree
## (the installed runs test the same code, as users get it):
##   test-quick      unit + simulator tests on .venv (newest libraries)        ~2 min
##   test-engines    the engine matrix (Docker 26/28, Podman 4/5/rootless)     ~8 min
##   check           ruff, mypy, vermin                                          ~1 min
##   test-packaging  both flavours' RPMs and ISOs from a clean clone, checked, and
##                   the scriptlets under systemd (nspawn)     ~6 min (15 at load 17)
##   test-py36       unit tests on .venv36 (Python 3.6, oldest libraries)        ~2 min
##   test-installed  (a) the lab tests on the installed XCP-ng 8.3 / XenServer 8 RPM, dom0
##                   processes on Python 3.6 with the oldest libraries (the bundled
##                   ones: what a CentOS 7 dom0 runs; where locale bugs show)    ~11 min
##   test-xcpng9     (b) the lab tests on the installed XCP-ng 9 RPM, dom0 processes
##                   on Python 3.12 with the newest libraries (bundled)          ~9 min
test: deps deps36 deps312
	$(call header,"unit + simulator")
	$(MAKE) --no-print-directory test-quick
	$(call header,"engine matrix: the engine-sensitive integration tests on each engine")
	$(MAKE) --no-print-directory test-engines
	$(call header,"lint + types + 3.6 syntax")
	$(MAKE) --no-print-directory check
	$(call header,"packaging: RPMs + update ISOs of both flavours")
	$(MAKE) --no-print-directory test-packaging
	$(call header,"unit tests on Python 3.6 with the oldest libraries")
	$(MAKE) --no-print-directory test-py36
	$(call header,"integration on the installed 8.3 pack: Python 3.6 with the oldest libraries")
	$(MAKE) --no-print-directory test-installed
	$(call header,"integration on the installed XCP-ng 9 pack: Python 3.12 with the newest libraries")
	$(MAKE) --no-print-directory test-xcpng9

# the tests that need no lab (make quick's tests)
test-quick: venv
	$(PY) -m pytest $(QUICK_TESTS)

# not a stage of make test: the tests that need no lab, then the lab tests from the source
# tree on .venv's Python (quicker to reach while editing than an installed run)
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
## from the committed tree (git archive HEAD), rpmlint-clean; FLAVOUR=xcpng9 (or make
## rpm-xcpng9): dist/xcpng9/xscontainer-VERSION-1.xcpng9.noarch.rpm and its pylibs
rpm: deps $(FLAVOUR_VENV)
	@FLAVOUR=$(FLAVOUR) PYTHON36=$(VENV36)/bin/python3 PYTHON312=$(VENV312)/bin/python3 \
	    PIP=$(VENV)/bin/pip DIST=$(RPM_DIST) packaging/build-rpm

## iso: the supplemental pack dist/xscontainer-VERSION.iso for XCP-ng 8.3 / XenServer 8
## (GPG_KEY=<key id> signs it); FLAVOUR=xcpng9 (or make iso-xcpng9): the pack for XCP-ng 9,
## dist/xscontainer-VERSION-xcpng9.iso
iso: rpm
	$(PY) packaging/build_pack.py --flavour $(FLAVOUR) --out $(ISO) \
	    $(if $(GPG_KEY),--gpg-key '$(GPG_KEY)') \
	    $(RPM_DIST)/xscontainer-$(VERSION)-*.noarch.rpm $(RPM_DIST)/xscontainer-pylibs-$(VERSION)-*.x86_64.rpm

rpm-xcpng9 iso-xcpng9 install-root-xcpng9:
	$(MAKE) --no-print-directory $(@:-xcpng9=) FLAVOUR=xcpng9

## install-root: the RPMs installed into the scratch root $(INSTALL_ROOT) (scriptlets need
## systemd and a shell inside the root: not run; tests/packaging checks their text)
install-root: rpm
	rm -rf $(INSTALL_ROOT) && mkdir -p $(INSTALL_ROOT)
	rpm --root $(abspath $(INSTALL_ROOT)) --dbpath /var/lib/rpm -i --nodeps --noscripts \
	    $(RPM_DIST)/xscontainer-$(VERSION)-*.noarch.rpm \
	    $(RPM_DIST)/xscontainer-pylibs-$(VERSION)-*.x86_64.rpm \
	    2>&1 | { grep -v -e 'should not be used directly' -e 'assuming you know' || true; }

## test-packaging: build both flavours' RPMs and ISOs from a clean clone of HEAD and check
## them (tests/packaging)
test-packaging: deps deps36 deps312
	$(PY) -m pytest tests/packaging

## test-installed: (a) the lab tests with plugin, package and programs from the installed
## XCP-ng 8.3 / XenServer 8 RPM (built from HEAD, as CI's clean checkout: uncommitted
## changes are not in it), dom0 processes (plugin, monitor, prepare-vm) on .venv36's
## Python 3.6; the installed package puts its bundled libraries (the oldest releases)
## first on its path
test-installed: deps36
	$(MAKE) --no-print-directory install-root FLAVOUR=xs8
	XSC_LAB_INSTALL_ROOT=$(abspath build/installroot) \
	    XSC_LAB_PYTHON_BIN=$(abspath $(VENV36)/bin) $(PY) -m pytest $(LAB_TESTS)

## test-xcpng9: (b) the lab tests on the installed XCP-ng 9 RPM, dom0 processes on
## .venv312's Python 3.12 with its bundled libraries (the newest releases)
test-xcpng9: deps312
	$(MAKE) --no-print-directory install-root FLAVOUR=xcpng9
	XSC_LAB_INSTALL_ROOT=$(abspath build/installroot-xcpng9) \
	    XSC_LAB_PYTHON_BIN=$(abspath $(VENV312)/bin) $(PY) -m pytest $(LAB_TESTS)

## test-py36: the unit tests on .venv36 (Python 3.6, oldest libraries)
test-py36: deps deps36
	@test -x $(VENV36)/bin/python3 || { echo "make: no python3 in $(VENV36)/bin" >&2; exit 1; }
	$(VENV36)/bin/python -m pytest tests/unit

## demo: bring the lab up, run the main job against it, tear it down (KEEP=1 leaves it up)
demo: deps
	$(PY) tests/lab/demo $(if $(KEEP),--keep)

lab-up: deps
	$(PY) tests/lab/lab up

lab-down:
	$(PYTHON) tests/lab/lab down

clean:
	-$(PYTHON) tests/lab/lab down
	rm -rf $(VENV) $(VENV36) $(VENV312) dist build .lab .mypy_cache .ruff_cache .pytest_cache
