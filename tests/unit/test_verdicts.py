"""Verdicts a maintainer can act on, from a real Avocado job: a crash, hang or
stalled device of the QEMU under test is FAIL with its reason line; the
suite's own fault is ERROR; a bad seed is ERROR before anything runs."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

AVOCADO = Path(sys.executable).parent / "avocado"
REPO = Path(__file__).resolve().parents[2]

STORIES = '''
import types

from txnstorm.scenario.harness import TxnstormTest, known_to_flake
from txnstorm.errors import DeviceStalled, QemuDied, QemuHung, QMPCommandError, StormStuckInGuest


class Story(TxnstormTest):
    """:avocado: enable"""

    def setUp(self):
        self.whiteboard = "{}"  # no QEMU needed: each test raises what a scenario would

    def test_crash(self):
        raise QemuDied("QEMU killed by SIGABRT: qemu-system-x86_64: ../block/io.c:411: bdrv_do_drained_end: "
                       "Assertion `bs->quiesce_counter > 0' failed.")

    def test_hang(self):
        raise QemuHung("QMP query-blockstats: no answer within 60 s")

    def test_stall(self):
        raise DeviceStalled("storm wrote nothing to ['disk0'] within 30 s")

    def test_refused(self):
        raise QMPCommandError("transaction", "GenericError", "Device 'disk0' is busy")

    def test_suite_fault(self):
        raise KeyError("a bug in txnstorm")

    def test_storm_stuck_in_guest(self):
        raise StormStuckInGuest("storm still running 60 s after it was told to end: nothing in flight in the "
                                "guest's block layer (disk0 0) nor on QEMU's side (stall class: guest-idle)")

    @known_to_flake("the device stall of README's Known issues")
    def test_flaky(self):
        raise DeviceStalled("storm wrote nothing to ['disk1'] within 30 s")


class OnAListedVersion(TxnstormTest):
    """:avocado: enable"""

    def setUp(self):
        self.whiteboard = "{}"
        self.sut = types.SimpleNamespace(version=self.name.name.rsplit("_", 1)[-1].replace("v", "").replace("x", "."))

    def crash_of_ki5(self):
        raise QemuDied("QEMU killed by SIGABRT: qemu-system-x86_64: ../block/io.c:525: bdrv_do_drained_end: "
                       "Assertion `bs->quiesce_counter > 0' failed.")

    def test_listed_crash_v7x2x22(self):
        self.crash_of_ki5()

    def test_fixed_crash_v10x2x2(self):
        raise QemuDied("QEMU killed by SIGABRT: qemu-system-x86_64: ../nbd/server.c:1584: blk_aio_attached: "
                       "Assertion `client->recv_coroutine == NULL' failed.")


class Process:
    """A QEMU process as the rule at the end of every test sees it: how it ended (``death``)."""

    def __init__(self, death=None):
        self._death = death

    def death(self):
        return self._death

    def kill(self):
        pass


ABORTED = QemuDied("QEMU killed by SIGABRT: (no stderr) (backtrace: qemu-crash-backtrace.txt)",
                   stage="at 'storm stopping'")


class Deaths(TxnstormTest):
    """:avocado: enable

    QEMU's death is the verdict, whichever channel noticed it first."""

    def setUp(self):
        self.whiteboard = "{}"
        self.sut = types.SimpleNamespace(version="9.9.9")
        self._to_kill = []  # the processes the test started, as TxnstormTest.setUp begins them

    def test_ssh_noticed_the_crash_first(self):
        self.kill_at_teardown(Process(ABORTED))
        raise OSError("SSH session not active")

    def test_an_nbd_client_noticed_the_daemons_hang(self):
        self.kill_at_teardown(Process())
        self.kill_at_teardown(Process(QemuHung("qemu-storage-daemon did not answer quit within 20 s",
                                               stage="at 'round 2: firing'")))
        raise ConnectionResetError("NBD server closed the connection")

    def test_a_crash_wins_over_a_hang(self):
        self.kill_at_teardown(Process(QemuHung("QEMU did not answer quit within 20 s", stage="while it quit")))
        self.kill_at_teardown(Process(ABORTED))
        self.error("guest command 'pkill fio' exited 255")

    def test_alive_and_well_is_the_suites_error(self):
        self.kill_at_teardown(Process())
        raise OSError("SSH session not active")

    def test_a_stall_that_a_crash_explains(self):
        self.kill_at_teardown(Process(ABORTED))  # the daemon: the guest's requests to it never complete
        raise DeviceStalled("stamps still running 30 s after it was told to end")

    def test_a_stall_that_a_hang_explains(self):
        self.kill_at_teardown(Process(QemuHung("qemu-storage-daemon did not answer quit within 20 s",
                                               stage="at 'storm stopping'")))
        raise DeviceStalled("stamps still running 30 s after it was told to end")

    def test_a_death_nobody_noticed(self):
        self.kill_at_teardown(Process(QemuDied("QEMU killed by SIGSEGV: (no stderr)", stage="while it quit")))

    def test_an_oracles_fail_stays_its_own(self):
        self.kill_at_teardown(Process(ABORTED))
        self.fail("transaction did not capture one point in time: 1 of 3 checks violated (round 2)")


class Seeded(TxnstormTest):
    """:avocado: enable"""

    def test_bad_seed(self):
        pass
'''


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    tmp = tmp_path_factory.mktemp("verdicts")
    (tmp / "stories.py").write_text(STORIES)
    subprocess.run(
        [str(AVOCADO), "--config", str(REPO / "avocado.cfg"), "run", "--job-results-dir", str(tmp / "results"),
         "-p", "seed=abc", "--max-parallel-tasks", "4", str(tmp / "stories.py")],  # no QEMU: side by side
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    results = json.loads((tmp / "results" / "latest" / "results.json").read_text())
    return {t["name"].rsplit(".", 1)[-1]: t for t in results["tests"]}


@pytest.mark.parametrize(
    ("test", "reason"),
    [
        ("test_crash", "QEMU crashed: QEMU killed by SIGABRT: qemu-system-x86_64: ../block/io.c:411: bdrv_do_drained"),
        ("test_hang", "QEMU hung: QMP query-blockstats: no answer within 60 s"),
        ("test_stall", "device stalled: storm wrote nothing to ['disk0'] within 30 s"),
        ("test_refused", "QEMU refused a command: transaction: GenericError: Device 'disk0' is busy"),
    ],
)  # fmt: skip
def test_a_failure_of_qemu_is_fail_with_its_reason(job, test, reason):
    assert job[test]["status"] == "FAIL", job[test]["fail_reason"]
    assert job[test]["fail_reason"].startswith(reason)
    assert json.loads(job[test]["whiteboard"])["failure"]["reason"].startswith(reason)


def test_a_listed_issue_in_any_test_is_warn_where_it_is_known_and_a_regression_where_it_was_fixed(job):
    """KI-5's crash in a test not written for it, on 7.2.22 (affected): WARN, said outside the tests
    that reproduced it.  KI-8's on 10.2.2, where upstream's 9.0 fix is (issue #38): FAIL, a regression."""
    listed, fixed = job["test_listed_crash_v7x2x22"], job["test_fixed_crash_v10x2x2"]
    assert listed["status"] == "WARN", listed["fail_reason"]
    assert listed["fail_reason"].startswith(
        "known issue KI-5, still reproduces on QEMU 7.2.22, outside what was measured: this test never "
        "reproduced KI-5 (its tests: BackupOfBackupFilter): QEMU crashed:"
    )
    assert json.loads(listed["whiteboard"])["failure"]["known_issue"] == "KI-5"
    assert fixed["status"] == "FAIL", fixed["fail_reason"]
    assert fixed["fail_reason"].startswith(
        "regression of KI-8 (fixed in 9.0 by 9c707525cb; not seen on 10.2.2 before): QEMU crashed: QEMU killed by "
        "SIGABRT: qemu-system-x86_64: ../nbd/server.c:1584: blk_aio_attached:"
    )
    assert fixed["fail_reason"].endswith("failed. (QEMU 10.2.2)")
    board = json.loads(fixed["whiteboard"])["failure"]
    assert (board["known_issue"], board["regression_of"]) == (None, "KI-8")


@pytest.mark.parametrize(("test", "reason"), [
    ("test_ssh_noticed_the_crash_first", "QEMU crashed at 'storm stopping': QEMU killed by SIGABRT"),
    ("test_an_nbd_client_noticed_the_daemons_hang",
     "QEMU hung at 'round 2: firing': qemu-storage-daemon did not answer quit within 20 s"),
    ("test_a_crash_wins_over_a_hang", "QEMU crashed at 'storm stopping'"),
    ("test_a_stall_that_a_crash_explains", "QEMU crashed at 'storm stopping'"),
    ("test_a_stall_that_a_hang_explains", "QEMU hung at 'storm stopping': qemu-storage-daemon did not answer quit"),
    ("test_a_death_nobody_noticed", "QEMU crashed while it quit: QEMU killed by SIGSEGV"),
])  # fmt: skip
def test_a_qemu_that_died_is_fail_whichever_channel_noticed_it(job, test, reason):
    """Issue #39: SSH, an NBD client or fio may notice a dead QEMU first; the verdict is still
    QEMU's FAIL (``git bisect run`` then says bad, not skip), the channel's error kept as evidence."""
    assert job[test]["status"] == "FAIL", job[test]["fail_reason"]
    assert job[test]["fail_reason"].startswith(reason), job[test]["fail_reason"]
    assert job[test]["fail_reason"].endswith("(QEMU 9.9.9)")
    failure = json.loads(job[test]["whiteboard"])["failure"]
    assert failure["stage"] and (failure["noticed_by"] is None) == (test == "test_a_death_nobody_noticed"), failure


def test_only_a_test_whose_qemus_are_well_is_the_suites_error(job):
    assert job["test_alive_and_well_is_the_suites_error"]["status"] == "ERROR"
    kept = job["test_an_oracles_fail_stays_its_own"]
    assert kept["status"] == "FAIL" and kept["fail_reason"].startswith("transaction did not capture"), kept


def test_the_suites_own_fault_is_error(job):
    assert job["test_suite_fault"]["status"] == "ERROR"


def test_a_storm_stuck_in_the_guest_is_error_not_a_fail_of_qemu(job):
    """Issue #22: nothing held outside the guest's writer is the suite's problem."""
    stuck = job["test_storm_stuck_in_guest"]
    assert stuck["status"] == "ERROR"
    assert "nothing in flight in the guest's block layer" in stuck["fail_reason"]
    assert "failure" not in json.loads(stuck["whiteboard"] or "{}"), "not recorded as a failure of QEMU"


def test_a_bad_seed_is_error_not_cancel(job):
    assert job["test_bad_seed"]["status"] == "ERROR"
    assert "seed 'abc' is not an integer" in job["test_bad_seed"]["fail_reason"]


def test_a_flaky_tests_failure_says_what_is_known(job):
    assert job["test_flaky"]["status"] == "FAIL"
    assert job["test_flaky"]["fail_reason"].endswith("(known to flake: the device stall of README's Known issues)")


def test_every_test_known_to_flake_is_tagged_flaky_and_back():
    """make ci leaves out the `flaky` tag: the decorator and the tag must agree."""
    import ast

    for path in sorted((REPO / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
                decorated = any("known_to_flake" in ast.unparse(d) for d in node.decorator_list)
                tags = re.findall(r":avocado:\s*tags=([\w,\-]+)", ast.get_docstring(node) or "")
                tagged = any("flaky" in t.split(",") for t in tags)
                assert decorated == tagged, f"{path.name}:{node.name}: @known_to_flake and the flaky tag disagree"
