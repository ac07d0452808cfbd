# txnstorm: `make check` (lint + unit + quick scenarios) and `make run` (the suite).
# Both do their own set-up (Debian packages as root, venv, guest build).
# Choose the QEMU under test with QEMU=/path/to/qemu-system-x86_64 or a build dir,
# QEMU_IMG likewise, ACCEL=auto|kvm|tcg.

VENV    := .venv
PY      := $(VENV)/bin/python
AVOCADO := $(VENV)/bin/avocado --config avocado.cfg
RESULTS := $(CURDIR)/results
TAGS    ?= quick
export QEMU QEMU_IMG ACCEL

.PHONY: all setup guest preflight lint unit quick scenarios check run clean

all: check

setup:
	@scripts/setup

guest: setup
	@scripts/txnstorm guest

# Checks the QEMU under test first (one line and exit 2 if wrong), then
# builds or verifies the guest, then picks the accelerator.
preflight: setup
	@scripts/txnstorm preflight --build-guest

lint: setup
	$(VENV)/bin/ruff check txnstorm tests

unit: setup
	scripts/run-unit

# Scenario tests of the given tags (default: the quick tier).
scenarios: preflight
	$(AVOCADO) run --job-results-dir $(RESULTS) --filter-by-tags=$(TAGS) tests/*.py

quick: TAGS = quick
quick: scenarios

check: lint unit quick

# The main job: every scenario test against the QEMU under test.
run: preflight
	$(AVOCADO) run --job-results-dir $(RESULTS) tests/*.py

clean:
	rm -rf results .pytest_cache .ruff_cache
