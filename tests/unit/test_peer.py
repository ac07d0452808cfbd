"""make teeth's peer row: QEMU's own iotests on a row's build (txnstorm/runner/peer.py)."""

from pathlib import Path

import pytest

from txnstorm.errors import UserError
from txnstorm.runner import peer
from txnstorm.runner.peer import IOTESTS

CHECK_OUTPUT = """\
QEMU          -- "/x/qemu-system-x86_64" -nodefaults
055   pass       [00:00:01] [00:00:20]   19.0s
185   fail       [00:00:20] [00:00:31]   11.0s   output mismatch (see 185.out.bad)
iothreads-create   not run    [00:00:31] [00:00:31]   ...
Not run: iothreads-create
Failures: 185
Failed 1 of 3 iotests
"""


def test_parse_check_reads_the_summary_and_each_line() -> None:
    failed, not_run = peer.parse_check(CHECK_OUTPUT, ("055", "185", "iothreads-create"))
    assert failed == ("185",)
    assert not_run == ("iothreads-create",)


def test_parse_check_counts_a_failing_line_without_a_summary() -> None:
    """check killed before its summary: the test lines still say what failed."""
    failed, _ = peer.parse_check("055   pass\n185   fail   output mismatch\n", ("055", "185"))
    assert failed == ("185",)


def test_peer_tests_are_the_readme_peer_lines() -> None:
    lines = ["Class 2, a bug", "Corpus: real bug", "Peer: iothreads-nbd-export", "Peer: 257 055"]
    assert peer.peer_tests(lines) == ("iothreads-nbd-export", "257", "055")
    assert peer.peer_tests(["Class 1"]) == ()


def test_tests_for_adds_the_fault_s_own_after_the_area_s() -> None:
    assert peer.tests_for(["055", "nbd-reconnect"]) == (*IOTESTS, "nbd-reconnect")


def result(failed: tuple[str, ...] = (), trouble: str = "") -> peer.PeerResult:
    return peer.PeerResult(("055", "185", "257"), failed, (), 1.0, trouble)


def test_a_fault_is_caught_by_a_test_that_passes_on_stock() -> None:
    verdict = peer.judge(result(("185", "257")), result(("185",)))
    assert verdict.caught_by == ("257",)
    assert verdict.stock_failed == ("185",)
    assert verdict.said == "caught by 257 (1 of 3 pass; 185 fail on stock too)"


def test_a_test_failing_on_stock_too_catches_nothing() -> None:
    verdict = peer.judge(result(("185",)), result(("185",)))
    assert not verdict.caught
    assert verdict.said.startswith("missed")


def test_check_that_did_not_run_judges_nothing() -> None:
    verdict = peer.judge(result(trouble="check exited 2"), result())
    assert not verdict.caught and verdict.said == "check exited 2"


def test_stock_said_counts_what_ran() -> None:
    assert peer.stock_said(result(("185",))) == "2 of 3 pass; 185 fail"


def test_a_tree_without_check_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no tests/qemu-iotests/check"):
        peer.present(tmp_path, ["055"])


def test_present_keeps_the_tests_the_tree_has(tmp_path: Path) -> None:
    iotests = tmp_path / "tests" / "qemu-iotests"
    (iotests / "tests").mkdir(parents=True)
    for name in ("check", "055", "tests/iothreads-stream"):
        (iotests / name).write_text("")
    assert peer.present(tmp_path, ["055", "iothreads-stream", "iothreads-create"]) == ("055", "iothreads-stream")
