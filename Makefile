# txnstorm: `make check` (lint + unit + quick scenarios) and `make run` (the suite).
# Both do their own set-up (Debian packages as root, venv, guest build).
# Choose the QEMU under test with QEMU=/path/to/qemu-system-x86_64 or a build dir,
# QEMU_IMG likewise (or QEMU's own QEMU_TEST_QEMU_BINARY / QEMU_TEST_QEMU_IMG),
# ACCEL=auto|kvm|tcg.

VENV    := .venv
PY      := $(VENV)/bin/python
AVOCADO := $(VENV)/bin/avocado --config avocado.cfg
RESULTS := $(CURDIR)/results
TAGS    ?= quick
DURATION ?= 10m
export QEMU QEMU_IMG ACCEL QEMU_TEST_QEMU_BINARY QEMU_TEST_QEMU_IMG

.PHONY: all inputs setup guest preflight lint unit quick scenarios check run ci nightly teeth replay replay-test clean

# One step at a time, in the order written: the input check always comes first.
.NOTPARALLEL:

all: check

# Every input (QEMU, QEMU_IMG, ACCEL, TAGS, NIGHTLY_TAGS, SHARD, DURATION,
# SEED, the cache dir) checked in about a second, before set-up, lint, unit
# tests, the guest build or the KVM probe: a wrong one is one line, exit 2.
# Standard library only, so it runs before the venv exists.
inputs:
	@TAGS='$(TAGS)' NIGHTLY_TAGS='$(NIGHTLY_TAGS)' TEETH_TAGS='$(TEETH_TAGS)' SHARD='$(SHARD)' DURATION='$(DURATION)' SEED='$(SEED)' \
	  PYTHONPATH='$(CURDIR)' python3 -m txnstorm.runner.inputs

setup:
	@scripts/setup

guest: setup
	@scripts/txnstorm guest

# Checks the QEMU under test first (one line and exit 2 if wrong), then
# builds or verifies the guest, then picks the accelerator.
preflight: inputs setup
	@scripts/txnstorm preflight --build-guest

lint: setup
	$(VENV)/bin/ruff check txnstorm tests guests docs

unit: setup
	scripts/run-unit

# Scenario tests.  TAGS: Avocado tag filters (comma = AND, space = OR,
# -tag = NOT, e.g. TAGS="quick,-control nbd" or TAGS=-nightly); empty = every
# test.  SHARD=i/N runs one deterministic shard of them (see README,
# "Sharding"); SEED=N gives every test that seed.
scenarios: inputs preflight
	@refs="$$(scripts/txnstorm select --tags='$(TAGS)' --shard='$(or $(SHARD),1/1)')" && \
	$(AVOCADO) run --job-results-dir $(RESULTS) $(if $(SEED),-p seed=$(SEED)) $$refs; rc=$$?; \
	scripts/txnstorm report $(RESULTS)/latest; exit $$rc

quick: TAGS = quick
quick: scenarios

check: inputs lint unit quick

# The main job: every scenario test against the QEMU under test.
run: TAGS =
run: scenarios

# What a CI pipeline runs on every patch series: the whole suite but the
# tests tagged `flaky` (a positive test that still meets an uncharacterised
# QEMU issue, named in its docstring).  A healthy QEMU is green (known
# issues are WARN), a regression is red.
ci: TAGS = -flaky
ci: scenarios

# The nightly tier: iterate every test with fresh seeds until DURATION ends,
# on the QEMU under test and on every QEMU built by `make qemu`, side by side.
nightly: inputs setup
	@scripts/txnstorm nightly --duration='$(DURATION)' --tags='$(NIGHTLY_TAGS)' --preflight

# Teeth: build QEMU with each fault of teeth/ injected (cached) and run
# TEETH_TAGS (default quick) against each, beside the stock build: a table of
# fault x QEMU -> caught / missed.  TEETH_QEMUS="10.2.2" limits the versions.
teeth: inputs setup
	@scripts/txnstorm teeth --tags='$(or $(TEETH_TAGS),quick)' --versions='$(TEETH_QEMUS)'

# Replay: `make replay` prints the command for each failure of the last job;
# `make replay-test TEST=tests/x.py:Class.test SEED=N` runs one test with its seed.
replay: setup
	@scripts/txnstorm replay $(or $(RESULTS_DIR),results/latest)

replay-test: inputs
	@[ -n "$(TEST)" ] || { echo "txnstorm: error: name the test: make replay-test TEST=tests/x.py:Class.test_method SEED=N" >&2; exit 2; }
	@$(MAKE) --no-print-directory preflight
	$(AVOCADO) run --job-results-dir $(RESULTS) $(if $(SEED),-p seed=$(SEED)) $(TEST)

clean:
	rm -rf results .pytest_cache .ruff_cache

# Build qemu-system-x86_64, qemu-img, qemu-io and qemu-storage-daemon into a cache entry (prints
# QEMU=<entry>/bin/qemu-system-x86_64 for `make check QEMU=...`): from the
# QEMU tree QEMU_SRC, or by default from Debian trixie's qemu source package
# (QEMU_DEB_SUITE=sid: the newest sid version whose files download).
QEMU_SRC ?=
.PHONY: qemu
qemu:
	@QEMU_SRC="$(QEMU_SRC)" scripts/build-qemu

# Speed and strength, measured side by side in one run (prints ratios, asserts nothing).
.PHONY: bench
bench: preflight
	.venv/bin/python -m txnstorm.runner.bench

# Leaks, false positives, interrupts and an injected hang (RUNS=20 INTERRUPTS=3);
# LOAD=N runs it all beside N CPU hogs (yes >/dev/null, ended by PID): a loaded CI runner.
.PHONY: reliability
reliability: preflight
	.venv/bin/python -m txnstorm.runner.reliability --runs $(or $(RUNS),20) --interrupts $(or $(INTERRUPTS),3) --load $(or $(LOAD),0)
