"""Every input a user gives, checked first: one line each, exit status 2.

``make check``, ``make run`` and every other make target run this before
set-up, lint, unit tests, the guest build or the KVM probe, so a wrong value
costs a second, not minutes.  Standard library only: on a fresh machine it
runs with the system ``python3`` before the virtualenv exists.

What is checked follows ``txnstorm.settings.SETTINGS``: each setting that is set (from the
environment, as make passes them) by its kind (``KINDS`` below), and each assignment on make's
command line (``TXNSTORM_MAKE_VARS``, the names whose ``$(origin)`` is "command line", for the
targets ``TXNSTORM_MAKE_GOALS``): a name no setting has (``QEMU_BIN=...: unknown setting; did you
mean QEMU?``), a setting none of those targets reads, a setting given empty where empty is no
choice (``QEMU=``); and that the cache dir can be written with room to spare.  (``TEST`` needs
Avocado's test list: ``scripts/txnstorm run`` checks it before preflight.)
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from txnstorm import REPO
from txnstorm.errors import UserError
from txnstorm.host import cachedir, sut
from txnstorm.oracles import known_issues
from txnstorm.runner import runs, teeth, validate
from txnstorm.settings import (
    ACCEL_CHOICES,
    MUTANTS_PEERS,
    SETTINGS,
    Settings,
    boot_choice,
    command_line_problems,
    default_cache_dir,
    qmp_answer_seconds,
)

TESTS_DIR = REPO / "tests"


def check_accel(value: str, var: str = "ACCEL") -> None:
    if value and value.lower() not in ACCEL_CHOICES:
        raise UserError(f"{var}={value} is not one of {', '.join(ACCEL_CHOICES)}")


def check_seed(var: str, value: str) -> None:
    if value and not value.strip().isdigit():
        raise UserError(f"{var}={value} is not a whole number; use the seed a report printed (e.g. {var}=123)")


def check_count(var: str, value: str, least: int = 1) -> int:
    """A whole number from ``least`` (``RUNS``, ``PAIRS``; ``LOAD``, ``INTERRUPTS`` and
    ``UNIT_JOBS`` from 0)."""
    if not value.strip().isdigit() or int(value) < least:
        raise UserError(f"{var}={value} is not a whole number{' from 1' if least else ''} "
                        f"(e.g. {var}={max(least, 2)})")  # fmt: skip
    return int(value)


def _tags(var: str, value: str) -> object:
    return runs.check_tags(value, sorted(TESTS_DIR.glob("*.py")), var) if value.strip() else None


def command_line(env: dict[str, str]) -> dict[str, str]:
    """Make's command-line assignments (``TXNSTORM_MAKE_VARS``), name -> value."""
    return {name: env.get(name, "") for name in env.get("TXNSTORM_MAKE_VARS", "").split()}


def checks(env: dict[str, str]) -> list[Callable[[], object]]:
    """One callable per input that is set; each raises UserError if wrong."""
    goals = env.get("TXNSTORM_MAKE_GOALS", "").split() or ["all"]
    given = command_line(env)
    said = {name: problem for name, problem in zip(given, command_line_problems(given, goals, every=True), strict=True)
            if problem is not None}  # fmt: skip
    env = {k: v for k, v in env.items() if k not in said}  # a name wrong on the command line: its one line only

    @functools.cache
    def settings() -> Settings:  # read once, where a check needs them whole: an empty or disagreeing one raises
        return Settings.from_env(env)

    found: list[Callable[[], object]] = [
        *(lambda problem=problem: _raise(problem) for problem in said.values()),
        lambda: sut.check_named(settings()),  # QEMU and its alias disagreeing, or empty
        lambda: host_room(cachedir.writable_cache_root(default_cache_dir(env)), "cache dir",
                          "set TXNSTORM_CACHE=/a/dir/on/a/bigger/disk"),
        lambda: host_room(RESULTS, "results dir", "run from a checkout you can write, with room"),
    ]
    if "validate" in goals and not env.get("JUDGE", "").strip() and not {"SERIES", "BASE"} & set(said):
        # the series and its base, before set-up (not again when the command line got them wrong)
        found.append(lambda: validate.check_inputs(env.get("SERIES", ""), env.get("BASE", ""), "3",  # RUNS: below
                                                   default_cache_dir(env)))  # fmt: skip
    for setting in SETTINGS:
        check, beside = KINDS.get(setting.kind), BESIDE_THE_SETTINGS.get(setting.kind)
        for name in setting.names:
            if not env.get(name, "").strip():
                continue
            if check is not None:
                found.append(lambda check=check, name=name: check(name, env[name]))
            elif beside is not None:
                found.append(lambda beside=beside, name=name: beside(name, env[name], settings()))
    return found


def _raise(problem: UserError) -> None:
    raise problem


MIN_FREE_GIB = 2.0  # what a run's images, saved guests and results take at most; `doctor` says the same
RESULTS = REPO / "results"  # make's results dir (the Makefile's RESULTS)


def host_room(root: Path, what: str, fix: str) -> Path:
    """A dir (the cache, the results) this user can write, on a disk with ``MIN_FREE_GIB`` free: a
    full disk or a read-only dir is bad input found in a second, not a test's ERROR after minutes."""
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{what} {root} cannot be written ({probe} is not a dir this user can write); {fix}")
    free = shutil.disk_usage(probe).free / 2**30
    if free < MIN_FREE_GIB:
        raise UserError(f"{what} {root} is on a disk with {free:.1f} GiB free, a run needs {MIN_FREE_GIB:.0f} GiB; "
                        f"free some space, or {fix}")  # fmt: skip
    return probe


def check_revision(var: str, value: str) -> None:
    """A revision of this checkout (``make bench BASELINE=main``)."""
    found = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{value}^{{commit}}"], cwd=REPO,
                           capture_output=True, text=True, check=False)  # fmt: skip
    if found.returncode != 0:
        raise UserError(f"{var}={value} is not a revision of this checkout (e.g. {var}=main or a commit)")


def check_switch(var: str, value: str) -> None:
    if value.strip() not in ("0", "1"):
        raise UserError(f"{var}={value} is not 0 or 1 (e.g. {var}=1)")


def check_mutants_peer(var: str, value: str) -> None:
    if value.strip() not in MUTANTS_PEERS:
        raise UserError(f"{var}={value} is not one of {', '.join(MUTANTS_PEERS)} (e.g. {var}=iotests)")


def check_nightly_qemus(value: str, settings: Settings) -> None:
    """Each word a version of the QEMU under test (Debian's) or a `make qemu` build, a binary or a build dir."""
    runs.nightly_qemus(value.split(), settings)


# How each kind of setting is checked: (name, value) -> raises UserError.  The QEMU and qemu-img
# kinds are checked together (sut.check_named), below; a kind in neither table needs no check of its own.
KINDS: dict[str, Callable[[str, str], object]] = {
    "accel": lambda var, value: check_accel(value, var),
    "tags": _tags,
    "shard": lambda var, value: runs.parse_shard(value, f"{var}="),
    "duration": lambda var, value: runs.parse_duration(value),
    "seed": check_seed,
    "switch": check_switch,
    "jobs": lambda var, value: runs.parse_jobs(value, var),
    "count": check_count,
    "count0": lambda var, value: check_count(var, value, least=0),
    "revision": check_revision,
    "qmp_seconds": lambda var, value: qmp_answer_seconds(value),
    "boot": lambda var, value: boot_choice(value),
    "mutants_peer": check_mutants_peer,
}
# The kinds checked beside the other settings (the QEMU under test, the cache): (name, value, settings).
BESIDE_THE_SETTINGS: dict[str, Callable[[str, str, Settings], object]] = {
    "qemus": lambda var, value, settings: check_nightly_qemus(value, settings),
    "teeth_versions": lambda var, value, settings: teeth.check_versions(value.split(), settings.cache_dir, var),
}


def problems(env: dict[str, str] | None = None) -> list[str]:
    said = []
    for check in checks(dict(os.environ) if env is None else env):
        try:
            check()
        except UserError as exc:
            if str(exc) not in said:  # the QEMU check reads every setting too: one line per problem
                said.append(str(exc))
    return said


def main(argv: list[str] | None = None) -> int:
    """Every input of the environment; ``--issue VALUE``: bisect-run's ISSUE too (a listed known issue)."""
    argv = sys.argv[1:] if argv is None else argv
    said = problems()
    if argv[:1] == ["--issue"] and len(argv) > 1 and argv[1].strip():
        try:
            known_issues.check_ids(argv[1])
        except UserError as exc:
            said.append(str(exc))
    for line in said:
        print(f"txnstorm: error: {line}", file=sys.stderr)
    return 2 if said else 0


if __name__ == "__main__":
    sys.exit(main())
