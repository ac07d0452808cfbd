# txnstorm: `make check` (lint + unit + quick scenarios) and `make run` (the suite).
# Both do their own set-up (Debian packages as root, venv, guest build).
# `make help` lists the targets and settings.

VENV    := .venv
PY      := $(VENV)/bin/python
AVOCADO := $(VENV)/bin/avocado --config avocado.cfg
RESULTS := $(CURDIR)/results
TAGS    ?= quick
DURATION ?= 10m
# Settings given on make's command line (or in the environment) reach every recipe's environment
# as they are; a setting no one gave is not exported (an empty QEMU is an error, not the default).
# The names given on the command line, for the input check (unknown names, settings the targets
# do not read, empty ones): txnstorm/settings.py declares every setting.
GIVEN := $(strip $(foreach v,$(.VARIABLES),$(if $(filter command line,$(origin $(v))),$(v))))

.PHONY: all help inputs setup guest preflight lint unit quick scenarios check run ci nightly teeth validate replay replay-test clean deaths coverage coverage-iotests mutants

# One step at a time, in the order written: the input check always comes first.
.NOTPARALLEL:

all: check

# The table `make help` prints: targets, then settings (kept in step with README.md's first screen).
help:
	@echo 'txnstorm: does a QMP transaction capture one point in time while guests and NBD clients write?'
	@echo
	@echo 'Targets (each does its own set-up; bad input is one line and exit 2, before anything slow):'
	@echo '  make quick          the quick scenario tier (23 tests, ~5 min on 2 cores under TCG)'
	@echo '  make run            every scenario test'
	@echo '  make ci             every scenario test but those tagged flaky (what a pipeline runs)'
	@echo '  make check          the project'"'"'s own tests: ruff, unit tests, then the quick tier'
	@echo '  make nightly        iterate the suite with fresh seeds until DURATION ends, per QEMU'
	@echo '  make replay         the replay line of each failure of the last run'
	@echo '  make teeth          fault-injected QEMU builds: does the tier catch each bug class?'
	@echo '  make validate       a patch series vs its base: both built, the tier RUNS times each, verdicts with odds'
	@echo '  make coverage       the tier on a gcov build of QEMU: what it never reaches (coverage-iotests: QEMU'"'"'s iotests)'
	@echo '  make mutants        drain/transaction mutants of QEMU'"'"'s source vs the tier (FAILFAST): killed or survived'
	@echo '  make qemu           build QEMU into the cache (QEMU_SRC=tree, or Debian'"'"'s source)'
	@echo '  make bench          speed and strength, side by side (asserts nothing); BASELINE=rev: round cadence vs rev'
	@echo '  make reliability    repeated runs: leaks, false positives, Ctrl-C, an injected hang'
	@echo '  make deaths         QEMU (and its daemon) killed at every stage of a test: each a FAIL naming it, never ERROR'
	@echo '  make unit | lint | setup | guest | preflight | clean'
	@echo '  scripts/txnstorm doctor | list | --help     host check, every test with tags and time, the CLI'
	@echo
	@echo 'Settings (make VAR=value; each is checked first; txnstorm/settings.py declares them):'
	@PYTHONPATH='$(CURDIR)' python3 -m txnstorm.settings
	@echo
	@echo 'scripts/txnstorm run (what make quick/run/ci call) exits 0 green, 1 a finding about QEMU (FAIL),'
	@echo '2 bad input, 3 the suite'"'"'s own trouble (ERROR); make reports each as its own exit 2.'

# Every input (each setting of txnstorm/settings.py that is set, each name on make's command
# line, the cache and results dirs) checked in about a second, before set-up, lint, unit
# tests, the guest build or the KVM probe: a wrong one is one line, exit 2.  Every target
# but help and clean runs it first.  Standard library only, so it runs before the venv exists.
inputs:
	@TXNSTORM_MAKE_VARS='$(GIVEN)' TXNSTORM_MAKE_GOALS='$(or $(MAKECMDGOALS),all)' TAGS='$(TAGS)' DURATION='$(DURATION)' \
	  PYTHONPATH='$(CURDIR)' python3 -m txnstorm.runner.inputs

setup:
	@scripts/setup

guest: inputs setup
	@scripts/txnstorm guest

# Checks the QEMU under test first (one line and exit 2 if wrong), then
# builds or verifies the guest, then picks the accelerator.
preflight: inputs setup
	@scripts/txnstorm preflight --build-guest

lint: inputs setup
	$(VENV)/bin/ruff check txnstorm tests guests docs

unit: inputs setup
	scripts/run-unit

# Scenario tests.  TAGS: Avocado tag filters (comma = AND, space = OR,
# -tag = NOT, e.g. TAGS="quick,-control nbd" or TAGS=-nightly); empty = every
# test.  TEST="name ...": only the tests these name (an id or a piece of one)
# among those TAGS selects.  SHARD=i/N runs one deterministic shard of them
# (docs/running.md, "CI"); SEED=N gives every test that seed; FAILFAST=1 stops at the
# first test that does not pass.  `scripts/txnstorm run` checks the QEMU, the
# guest and the accelerator first, runs one Avocado job, writes the report and
# exits 0 green, 1 FAIL, 2 bad input, 3 ERROR (make turns any into its 2).
scenarios: inputs setup
	@scripts/txnstorm run --tags='$(TAGS)' --shard='$(or $(SHARD),1/1)' $(if $(SEED),--seed='$(SEED)') \
	  $(if $(filter-out 0,$(FAILFAST)),--failfast) $(if $(JOBS),--jobs='$(JOBS)') $(foreach t,$(TEST),--test='$(t)')

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
# on the QEMU under test and on every QEMU built by `make qemu`, side by side
# (NIGHTLY_QEMUS="7.2.22 10.2.2 ~/qemu/build": exactly those).
nightly: inputs setup
	@scripts/txnstorm nightly --duration='$(DURATION)' --tags='$(NIGHTLY_TAGS)' --qemus='$(NIGHTLY_QEMUS)' --preflight

# Teeth: build QEMU with each fault of teeth/ injected (cached) and run
# TEETH_TAGS (default quick) against each, beside the stock build: a table of
# fault x QEMU -> caught / missed.  TEETH_QEMUS="10.2.2" limits the versions.
teeth: inputs setup
	@scripts/txnstorm teeth --tags='$(or $(TEETH_TAGS),quick)' --versions='$(TEETH_QEMUS)' --faults='$(TEETH_FAULTS)' $(if $(filter-out 0,$(TEETH_PEER)),--peer) $(if $(filter-out 0,$(FAILFAST)),--failfast) $(if $(JOBS),--jobs='$(JOBS)')

# Validate a patch series: SERIES (a dir of git format-patch files, an mbox from b4 am, or a patch)
# applied onto BASE (a version `make qemu` built, e.g. 10.2.2, or a QEMU source tree), both built
# (compiler cache shared), TAGS (default quick; every test when TEST names some) run RUNS times on each side, interleaved with the same
# seeds; a verdict per test (regression / fixed / unchanged) with the odds.  Exit 1 on a regression.
validate: TAGS = $(if $(TEST),,quick)
validate: inputs setup
	@scripts/txnstorm validate --series='$(SERIES)' --base='$(BASE)' --tags='$(TAGS)' --runs='$(or $(RUNS),3)' \
	  $(if $(SEED),--seed='$(SEED)') $(foreach t,$(TEST),--test='$(t)') $(if $(JUDGE),--judge='$(JUDGE)')

# Where the suite is blind (docs/teeth.md): make qemu's 10.2.2 source built with gcov into its own
# cache (build dir kept: the counters live there), TAGS (default quick) run on it, then gcovr's map of
# the block layer's files and the functions of drained sections and transactions never reached;
# `make coverage-iotests` measures QEMU's own iotests of the area (IOTESTS=...) on the same build.
coverage: inputs setup
	@scripts/txnstorm coverage --tags='$(TAGS)' $(if $(JOBS),--jobs='$(JOBS)')

coverage-iotests: inputs setup
	@scripts/txnstorm coverage --iotests='$(IOTESTS)'

# Mutants generated from QEMU's source (a drained section, a quiesce, a transaction step deleted),
# each built in one kept build dir and the tier (TAGS, default quick) run on it with FAILFAST.
# MUTANTS_SHARD=i/N, MUTANTS_LIMIT=N, MUTANTS="id pieces", MUTANTS_LIST=1 (ids only), MUTANTS_SUM=1 (the shards' sum);
# MUTANTS_PEER=iotests judges them by QEMU's iotests of the area instead (the peer's score).
mutants: inputs setup
	@scripts/txnstorm mutants --tags='$(TAGS)' --shard='$(or $(MUTANTS_SHARD),1/1)' $(if $(MUTANTS_LIMIT),--limit='$(MUTANTS_LIMIT)') \
	  --peer='$(or $(MUTANTS_PEER),suite)' \
	  $(foreach m,$(MUTANTS),--pick='$(m)') $(if $(filter-out 0,$(MUTANTS_LIST)),--list) $(if $(filter-out 0,$(MUTANTS_SUM)),--sum) \
	  $(if $(filter-out 0,$(MUTANTS_UNREACHED)),--run-unreached) $(if $(JOBS),--jobs='$(JOBS)')

# Replay: `make replay` prints the line replaying each failure of the last job on the QEMU (and
# accelerator) it failed on: `make run TEST=tests/x.py:Class.test SEED=N QEMU=... ACCEL=...`.
# `make replay-test` is the older name of `make run TEST=...`.
replay: inputs setup
	@scripts/txnstorm replay $(or $(RESULTS_DIR),results/latest)

replay-test: inputs
	@[ -n "$(TEST)" ] || { echo "txnstorm: error: name the test: make run TEST=tests/x.py:Class.test_method SEED=N" >&2; exit 2; }
	@$(MAKE) --no-print-directory run

clean:
	rm -rf results .pytest_cache .ruff_cache

# Build qemu-system-x86_64, qemu-img, qemu-io and qemu-storage-daemon into a cache entry (prints
# QEMU=<entry>/bin/qemu-system-x86_64 for `make check QEMU=...`): from the
# QEMU tree QEMU_SRC, or by default from Debian trixie's qemu source package
# (QEMU_DEB_SUITE=sid: the newest sid version whose files download).
QEMU_SRC ?=
.PHONY: qemu
qemu: inputs
	@QEMU_SRC="$(QEMU_SRC)" scripts/build-qemu

# Speed and strength, measured side by side in one run (prints ratios, asserts nothing).
.PHONY: bench
bench: preflight
	.venv/bin/python -m txnstorm.runner.bench $(if $(BASELINE),--baseline='$(BASELINE)' --pairs='$(or $(PAIRS),2)')

# Leaks, false positives, interrupts and an injected hang (RUNS=20 INTERRUPTS=3);
# LOAD=N runs it all beside N CPU hogs (yes >/dev/null, ended by PID): a loaded CI runner.
.PHONY: reliability
reliability: preflight
	.venv/bin/python -m txnstorm.runner.reliability --runs $(or $(RUNS),20) --interrupts $(or $(INTERRUPTS),3) --load $(or $(LOAD),0)

# QEMU's death is the verdict whichever channel notices it first: the QEMU under test (Debian's, behind
# a wrapper) and its qemu-storage-daemon sent SIGABRT and SIGSTOP at each stage of a real test, driven
# by the test's own progress; a table of stage x signal x process -> verdict (~25 min on 2 cores).
.PHONY: deaths
deaths: preflight
	.venv/bin/python -m txnstorm.runner.deaths
