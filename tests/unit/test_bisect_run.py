"""`git bisect run` converges on what this suite provokes: scripts/bisect-run
answers 1 (bad) for a QEMU that aborts and for one that hangs mid-storm, and
0 (good) for a healthy one.  The failing QEMUs are the real binary behind a
wrapper that injects the failure once the suite's QMP log (beside the console log) says the
first round is firing: in the storm, however slow the host is (two `make unit` at once are
slow), and while the suite waits on QMP, so a stop is named within the QMP window.  (A fixed
2 s after the guest's "ready" could land in the storm's start, a guest command over SSH,
which names a stopped QEMU only after its own 60 s.)  Those two boot cold
(``TXNSTORM_BOOT=cold``): a wrapper in a temp dir is a new QEMU each run, whose saved guest
would only fill the cache.

Real QEMU, real guest (from the caller's cache, conftest's ``GUEST_CACHE``: built there by
bisect-run's preflight if missing), ~2 min.
"""

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import GUEST_CACHE

REPO = Path(__file__).resolve().parents[2]
REAL_QEMU = Path("/usr/bin/qemu-system-x86_64")
TEST = "tests/transaction_snapshot_backup.py:SnapshotBackupTransaction.test_backup_equals_frozen_base"
WRAPPER = """#!/bin/sh
# txnstorm test double: the real QEMU, sent SIG{signal} once the suite's QMP log says round 1
# is firing (so the failure lands in the storm however slow the host is today).
console=$(printf '%s\\n' "$@" | sed -n 's/.*path=\\([^,]*console[.]log\\).*/\\1/p' | head -n 1)
qmp_log="${{console%/*}}/qmp.log"
case " $* " in *" -kernel "*)
    (n=0; until grep -q '## round 1: firing' "$qmp_log" 2>/dev/null; do
         kill -0 $$ 2>/dev/null && [ $n -lt 2400 ] || exit 0; n=$((n + 1)); sleep 0.05; done
     kill -{signal} $$) & ;;
esac
exec {qemu} "$@"
"""

pytestmark = pytest.mark.skipif(not REAL_QEMU.exists(), reason="needs Debian's QEMU (make setup)")


def qemu_that(tmp_path: Path, signal: str) -> Path:
    """A qemu-system-x86_64 that is sent ``signal`` as the first round fires (ABRT: a crash;
    STOP: a hang), with Debian's qemu-img beside it."""
    directory = tmp_path / signal.lower()
    directory.mkdir()
    wrapper = directory / "qemu-system-x86_64"
    wrapper.write_text(WRAPPER.format(signal=signal, qemu=REAL_QEMU))
    wrapper.chmod(0o755)
    (directory / "qemu-img").symlink_to(REAL_QEMU.parent / "qemu-img")
    return wrapper


def bisect_run(qemu: Path, cwd: Path, **settings: str) -> tuple[int, str]:
    env = {**os.environ, "QEMU": str(qemu), "ACCEL": "tcg", "TXNSTORM_CACHE": str(GUEST_CACHE), **settings}
    proc = subprocess.run(
        [str(REPO / "scripts" / "bisect-run"), TEST, "7", "1"], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    return proc.returncode, proc.stderr


@pytest.fixture
def jobs_removed_on_pass(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """bisect-run's job dirs: removed when the test passes, kept (and named) when not."""
    said: list[str] = []
    yield said
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.passed:
        for job in re.findall(r"\(job: (\S+)/latest\)", "".join(said)):
            shutil.rmtree(job, ignore_errors=True)


@pytest.mark.long(8)
def test_a_healthy_qemu_is_good(tmp_path, jobs_removed_on_pass):
    rc, said = bisect_run(REAL_QEMU, tmp_path)
    jobs_removed_on_pass.append(said)
    assert rc == 0, said
    assert ": PASS" in said


@pytest.mark.long(9)
def test_a_qemu_that_aborts_mid_storm_is_bad(tmp_path, jobs_removed_on_pass):
    rc, said = bisect_run(qemu_that(tmp_path, "ABRT"), tmp_path, TXNSTORM_BOOT="cold")
    jobs_removed_on_pass.append(said)
    assert rc == 1, said
    # the stage is the step where the suite met the dead QEMU: the round's firing or its transaction
    assert re.search(r"FAIL: QEMU crashed at '(round 1: |transaction of )[^']*': QEMU killed by SIGABRT", said), said


@pytest.mark.long(15)
def test_a_qemu_that_hangs_mid_storm_is_bad(tmp_path, jobs_removed_on_pass):
    # a 5 s QMP answer window (the least a user can set; default 60): the same verdict, named
    # within 10 s of the stop (a wait pings as often as a window that short) instead of 70 s
    rc, said = bisect_run(qemu_that(tmp_path, "STOP"), tmp_path, TXNSTORM_QMP_ANSWER_S="5", TXNSTORM_BOOT="cold")
    jobs_removed_on_pass.append(said)
    assert rc == 1, said
    # which QMP call meets the stopped QEMU first depends on the round: a command or the ping
    # while a job runs; both wait the user's 5 s
    assert re.search(r"FAIL: QEMU hung at '(round 1: |transaction of )", said) and "no answer within 5 s" in said, said
    assert re.search(r"\(QEMU (main thread in [^;]+; )?backtrace: qemu-backtrace.txt\)", said), said


@pytest.mark.parametrize(("args", "env", "says"), [
    ([], {}, "name the test"),
    (["no_such_test"], {}, "TEST='no_such_test' names no test"),
    (["Rollback"], {}, "TEST='Rollback' names 2 tests"),
    (["test_disconnect", "abc"], {}, "SEED must be a whole number, not 'abc'"),
    (["test_disconnect", "1", "0"], {}, "N must be a positive number, not '0'"),
    (["test_disconnect"], {"QEMU": "/nonexistent/qemu"}, "QEMU=/nonexistent/qemu: no such file"),
    (["test_disconnect"], {"ISSUE": "KI-99"}, "ISSUE=KI-99: KI-99 is not a known issue"),
    (["test_disconnect"], {"ISSUE": "KI-5,KI-0"}, "ISSUE=KI-5,KI-0: KI-0 is not a known issue"),
    (["test_disconnect"], {"QEMU": ""}, "QEMU= is empty"),
])  # fmt: skip
def test_a_usage_error_aborts_the_bisection_before_any_build(tmp_path, args, env, says):
    proc = subprocess.run(
        [str(REPO / "scripts" / "bisect-run"), *args], cwd=tmp_path, env={**os.environ, **env},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 128, proc
    assert proc.stderr.count("\n") == 1 and says in proc.stderr and "aborting the bisection" in proc.stderr


def test_help_prints_the_usage_and_builds_nothing(tmp_path):
    proc = subprocess.run([str(REPO / "scripts" / "bisect-run"), "--help"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=30, check=False)  # fmt: skip
    assert proc.returncode == 0 and proc.stderr == "", proc
    assert "git bisect run /path/to/txnstorm/scripts/bisect-run TEST [SEED] [N]" in proc.stdout
    assert "128  abort the bisection" in proc.stdout and not list(tmp_path.iterdir())


def test_git_bisect_run_stops_at_a_typo_instead_of_skipping_every_commit(tmp_path):
    """What git itself does with bisect-run's 128: it aborts at the first commit it tests."""
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    for i in range(4):
        subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", f"c{i}"], check=True)
    subprocess.run([*git, "bisect", "start", "HEAD", "HEAD~3"], check=True, capture_output=True)
    proc = subprocess.run([*git, "bisect", "run", str(REPO / "scripts" / "bisect-run"), "no_such_test"],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    log = subprocess.run([*git, "bisect", "log"], capture_output=True, text=True, check=False).stdout
    assert proc.returncode != 0 and "skip" not in log, (proc.stdout + proc.stderr, log)
    assert "TEST='no_such_test' names no test" in proc.stderr
