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

.PHONY: all setup guest preflight lint unit quick scenarios tags-check check run nightly replay replay-test clean

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

# Scenario tests.  TAGS: Avocado tag filters (comma = AND, space = OR, e.g.
# TAGS="quick,-control nbd"); empty = every test.  SHARD=i/N runs one
# deterministic shard of them (see README, "Sharding").
scenarios: tags-check preflight
	@filters="$$(scripts/txnstorm tags '$(TAGS)')" && \
	refs="$$($(AVOCADO) list $$filters tests/*.py | scripts/txnstorm shard '$(or $(SHARD),1/1)')" && \
	$(AVOCADO) run --job-results-dir $(RESULTS) $$refs; rc=$$?; \
	scripts/txnstorm report $(RESULTS)/latest; exit $$rc

tags-check: setup
	@scripts/txnstorm tags '$(TAGS)' >/dev/null

quick: TAGS = quick
quick: scenarios

check: lint unit quick

# The main job: every scenario test against the QEMU under test.
run: TAGS =
run: scenarios

# The nightly tier: iterate every test with fresh seeds until DURATION ends,
# on the QEMU under test and on every QEMU built by `make qemu`, side by side.
DURATION ?= 10m
nightly: setup
	@scripts/txnstorm nightly --duration '$(DURATION)' --tags '$(NIGHTLY_TAGS)' --preflight

# Replay: `make replay` prints the command for each failure of the last job;
# `make replay-test TEST=tests/x.py:Class.test SEED=N` runs one test with its seed.
replay: setup
	@scripts/txnstorm replay $(or $(RESULTS_DIR),results/latest)

replay-test: setup
	@case "$(SEED)" in *[!0-9]*) echo "txnstorm: error: SEED=$(SEED) is not a whole number; use the seed a report printed" >&2; exit 2;; esac
	@[ -n "$(TEST)" ] || { echo "txnstorm: error: name the test: make replay-test TEST=tests/x.py:Class.test_method SEED=N" >&2; exit 2; }
	@scripts/txnstorm preflight --build-guest
	$(AVOCADO) run --job-results-dir $(RESULTS) $(if $(SEED),-p seed=$(SEED)) $(TEST)

clean:
	rm -rf results .pytest_cache .ruff_cache

# Build qemu-system-x86_64, qemu-img and qemu-io into a cache entry (prints
# QEMU=<entry>/bin/qemu-system-x86_64 for `make check QEMU=...`): from the
# QEMU tree QEMU_SRC, or by default from Debian trixie's qemu source package.
QEMU_SRC ?=
.PHONY: qemu
qemu:
	@QEMU_SRC="$(QEMU_SRC)" scripts/build-qemu

# Speed and strength, measured side by side in one run (prints ratios, asserts nothing).
.PHONY: bench
bench: preflight
	.venv/bin/python -m txnstorm.bench

# Leaks, false positives, interrupts and an injected hang (RUNS=20 INTERRUPTS=3).
.PHONY: reliability
reliability: preflight
	.venv/bin/python -m txnstorm.reliability --runs $(or $(RUNS),20) --interrupts $(or $(INTERRUPTS),3)
