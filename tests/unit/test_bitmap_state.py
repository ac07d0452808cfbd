"""The bitmap lifecycle's state checks (``oracles.bitmap_state``), on QMP answers as QEMU gives them."""

from pathlib import Path

import pytest

from txnstorm.oracles.bitmap_state import DISABLED, REMOVED, TWIN, BitmapState, bitmap_states, lifecycle_checks
from txnstorm.transactions.plans import BitmapBase

CLEARED = BitmapBase("disk1", "disk1", "bm-cleared-r1", Path("/s/disk1-full-r1.qcow2"), 1)
BASE = BitmapBase("disk0", "disk0", "bm-enabled-r1", Path("/s/disk0-full-r1.qcow2"), 1, others=(CLEARED,))


def states(disabled_recording=False, cleared=(40960, True), twin=40960):
    return {
        "disk0/bm-enabled-r1": BitmapState(8192, disabled_recording),
        "disk0/bm-merged-r2": BitmapState(8192, False),
        "disk1/bm-cleared-r1": BitmapState(*cleared),
        "disk1/bm-cleared-r1-twin": BitmapState(twin, True),
    }


def verdicts(found):
    return {c.oracle: c.ok for c in found}


def test_a_lifecycle_as_the_transactions_left_it_agrees():
    assert verdicts(lifecycle_checks(states(), BASE)) == {DISABLED: True, TWIN: True, REMOVED: True}


def test_a_remove_that_never_committed_is_caught():
    """The mutant blockdev.c:2101 (the remove's commit step deleted): the bitmap stays, held busy."""
    kept = {**states(), "disk0/bm-enabled-r1-dropped": BitmapState(0, True, busy=True)}
    found = lifecycle_checks(kept, BASE)
    assert verdicts(found)[REMOVED] is False
    assert "disk0/bm-enabled-r1-dropped still listed" in found[2].describe()


def test_a_lost_disable_and_a_lost_clear_are_each_caught():
    """The mutants blockdev.c:2192 (disable) and :2184 (clear): more recording, more bits."""
    assert verdicts(lifecycle_checks(states(disabled_recording=True), BASE))[DISABLED] is False
    lost_clear = lifecycle_checks(states(cleared=(1048576, True)), BASE)
    assert verdicts(lost_clear) == {DISABLED: True, TWIN: False, REMOVED: True}
    assert "disk1/bm-cleared-r1 counts 1048576 bytes, disk1/bm-cleared-r1-twin 40960" in lost_clear[1].describe()


def test_a_reader_that_sees_nothing_recording_fails_the_disabled_check():
    assert verdicts(lifecycle_checks(states(cleared=(40960, False)), BASE))[DISABLED] is False


def test_a_missing_bitmap_is_an_error_not_a_verdict():
    gone = states()
    del gone["disk1/bm-cleared-r1-twin"]
    with pytest.raises(KeyError, match="no bitmap disk1/bm-cleared-r1-twin"):
        lifecycle_checks(gone, BASE)


def test_states_are_read_by_node_and_name_and_a_jobs_nameless_bitmap_is_left_out():
    class Vm:
        def cmd(self, command, **kw):
            assert command == "query-named-block-nodes"
            return [{"node-name": "disk1", "dirty-bitmaps": [
                {"name": "bm-cleared-r1", "count": 4096, "recording": True, "granularity": 4096},
                {"count": 0, "recording": True, "busy": True}]}, {"node-name": "disk1-file"}]  # fmt: skip

    assert bitmap_states(Vm()) == {"disk1/bm-cleared-r1": BitmapState(4096, True)}
