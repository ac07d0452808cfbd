"""Every input a user gives, checked first: one line each, exit status 2.

``make check``, ``make run`` and the other entry points run this before
set-up, lint, unit tests, the guest build or the KVM probe, so a wrong value
costs a second, not minutes.  Standard library only: on a fresh machine it
runs with the system ``python3`` before the virtualenv exists.

Checked (from the environment, as make passes them): ``QEMU`` and
``QEMU_IMG`` (or QEMU's ``QEMU_TEST_QEMU_BINARY``, ``QEMU_TEST_QEMU_IMG``),
``ACCEL``, ``TAGS``, ``NIGHTLY_TAGS`` and ``TEETH_TAGS``, ``SHARD``, ``DURATION``, ``SEED``
and ``TXNSTORM_SEED``, ``TXNSTORM_QMP_ANSWER_S``, ``TXNSTORM_BOOT``, ``FAILFAST``, ``JOBS``, the paths of
``NIGHTLY_QEMUS``, and that the cache dir can be written.  (``TEST`` needs Avocado's test list:
``scripts/txnstorm run`` checks it before preflight.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

from txnstorm import REPO
from txnstorm.errors import UserError
from txnstorm.host import cachedir, sut
from txnstorm.runner import runs
from txnstorm.settings import ACCEL_CHOICES, Settings, boot_choice, default_cache_dir, qmp_answer_seconds

TESTS_DIR = REPO / "tests"


def check_accel(value: str) -> None:
    if value and value.lower() not in ACCEL_CHOICES:
        raise UserError(f"ACCEL={value} is not one of {', '.join(ACCEL_CHOICES)}")


def check_seed(var: str, value: str) -> None:
    if value and not value.strip().isdigit():
        raise UserError(f"{var}={value} is not a whole number; use the seed a report printed (e.g. {var}=123)")


def checks(env: dict[str, str]) -> list[Callable[[], object]]:
    """One callable per input that is set; each raises UserError if wrong."""
    found: list[Callable[[], object]] = [
        lambda: sut.check_named(Settings.from_env(env)),  # QEMU and its alias disagreeing is the first error
        lambda: cachedir.writable_cache_root(default_cache_dir(env)),
    ]
    if env.get("ACCEL"):
        found.append(lambda: check_accel(env["ACCEL"]))
    for var in ("TAGS", "NIGHTLY_TAGS", "TEETH_TAGS"):
        if env.get(var, "").strip():
            found.append(lambda var=var: runs.check_tags(env[var], sorted(TESTS_DIR.glob("*.py")), var))
    if env.get("SHARD"):
        found.append(lambda: runs.parse_shard(env["SHARD"]))
    if env.get("DURATION"):
        found.append(lambda: runs.parse_duration(env["DURATION"]))
    for var in ("SEED", "TXNSTORM_SEED"):
        if env.get(var):
            found.append(lambda var=var: check_seed(var, env[var]))
    if env.get("FAILFAST"):
        found.append(lambda: check_switch("FAILFAST", env["FAILFAST"]))
    if env.get("JOBS"):
        found.append(lambda: runs.parse_jobs(env["JOBS"]))
    if env.get("TXNSTORM_QMP_ANSWER_S"):
        found.append(lambda: qmp_answer_seconds(env["TXNSTORM_QMP_ANSWER_S"]))
    if env.get("TXNSTORM_BOOT"):
        found.append(lambda: boot_choice(env["TXNSTORM_BOOT"]))
    if env.get("BASELINE"):
        found.append(lambda: check_revision("BASELINE", env["BASELINE"]))
    if env.get("NIGHTLY_QEMUS", "").strip():
        found.append(lambda: check_nightly_qemus(env["NIGHTLY_QEMUS"]))
    return found


def check_revision(var: str, value: str) -> None:
    """A revision of this checkout (``make bench BASELINE=main``)."""
    found = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{value}^{{commit}}"], cwd=REPO,
                           capture_output=True, text=True, check=False)  # fmt: skip
    if found.returncode != 0:
        raise UserError(f"{var}={value} is not a revision of this checkout (e.g. {var}=main or a commit)")


def check_switch(var: str, value: str) -> None:
    if value.strip() not in ("0", "1"):
        raise UserError(f"{var}={value} is not 0 or 1 (e.g. {var}=1)")


def check_nightly_qemus(value: str) -> None:
    """Each word a version of Debian's QEMU or a `make qemu` build, a binary or a build dir."""
    runs.nightly_qemus(value.split())


def problems(env: dict[str, str] | None = None) -> list[str]:
    said = []
    for check in checks(dict(os.environ) if env is None else env):
        try:
            check()
        except UserError as exc:
            if str(exc) not in said:  # the QEMU check reads every setting too: one line per problem
                said.append(str(exc))
    return said


def main() -> int:
    said = problems()
    for line in said:
        print(f"txnstorm: error: {line}", file=sys.stderr)
    return 2 if said else 0


if __name__ == "__main__":
    sys.exit(main())
