"""The stall examiner names which side holds the requests; a stall known
issue is matched by that name, by any test whose device stalls."""

import json

import pytest

from txnstorm.errors import DeviceStalled
from txnstorm.oracles import known_issues as ki
from txnstorm.oracles.stall import QueueView, StallEvidence, parse_inflight


def queue(**overrides: object) -> QueueView:
    base = {"queue": "disk0/0", "num": 256, "last_avail_idx": 100, "inuse": 0, "used_idx": 100,
            "signalled_used": 100, "avail_idx": 100, "avail_flags": 0, "used_flags": 0, "avail_event": 100,
            "used_event": 100}  # fmt: skip
    base.update(overrides)
    return QueueView(**base)  # type: ignore[arg-type]


def evidence(*queues: QueueView, inflight: tuple[int, int] = (0, 4), unstuck_by: str | None = None) -> StallEvidence:
    return StallEvidence(["disk0"], list(queues), True, {"disk0": inflight}, "", {"disk0": 5}, unstuck_by)


@pytest.mark.parametrize(
    ("view", "inflight", "signature"),
    [
        (queue(avail_idx=104), (0, 4), "ring-not-taken"),
        (queue(last_avail_idx=104, avail_idx=104, inuse=4), (0, 4), "taken-not-completed"),
        (queue(), (0, 4), "completed-not-seen"),
        (queue(), (0, 0), "guest-idle"),
    ],
)  # fmt: skip
def test_the_class_names_the_side_that_holds_the_requests(view, inflight, signature):
    assert evidence(view, inflight=inflight).signature == signature


def test_the_stall_measured_on_7_2_10_0_and_10_2_is_completed_not_seen():
    """QEMU took and completed everything, the guest's used_event is 8 behind
    QEMU's used index, the guest did not answer how many it holds."""
    measured = queue(num=256, last_avail_idx=6380, used_idx=6380, signalled_used=6380, avail_idx=6380,
                     avail_event=6380, used_event=6372)  # fmt: skip
    stalled = StallEvidence(["disk0"], [measured], True, {"disk0": None}, "", {"disk0": 5})
    assert stalled.signature == "completed-not-seen"
    assert "guest consumed to used_event 6372: interrupt was due" in stalled.describe()


def test_an_unreadable_queue_is_not_taken_for_an_idle_one():
    broken = queue(avail_idx=104, error="ring not readable")
    assert evidence(broken, inflight=(0, 0)).signature == "guest-idle"
    assert "ring not readable" in evidence(broken).describe()


def test_ring_indexes_wrap_at_16_bits():
    view = queue(last_avail_idx=65534, avail_idx=2, avail_event=65535)
    assert view.not_taken == 4
    assert view.kick_expected is True  # avail_event inside [last_avail, avail.idx): a kick was due
    stale = queue(last_avail_idx=65534, avail_idx=2, avail_event=65000)
    assert stale.kick_expected is False  # QEMU never asked for one: notifications left off


def test_interrupt_due_when_used_index_passed_the_guests_used_event():
    assert queue(used_idx=110, used_event=105).interrupt_expected is True
    assert queue(used_idx=110, used_event=110).interrupt_expected is False
    assert queue(used_idx=110, used_event=None).interrupt_expected is None


def test_the_summary_says_who_holds_what_and_what_unstuck_it():
    text = evidence(queue(avail_idx=103, avail_event=100), unstuck_by="stop/cont").describe()
    assert text.startswith("stall class: ring-not-taken (disk0/0: avail.idx 103 last_avail 100 inuse 0")
    assert "kick was due" in text
    assert text.endswith("un-stuck by stop/cont")
    assert evidence(queue(avail_idx=103, avail_event=90)).describe().endswith("un-stuck not by stop/cont")
    json.dumps(evidence(queue()).as_dict())  # stall.json is plain JSON


def test_guest_inflight_is_read_per_serial():
    text = "vda disk0 0 3\nvdb disk1 0 0\nvdc\n"
    assert parse_inflight(text) == {"disk0": (0, 3), "disk1": (0, 0)}


def stall_entry(**overrides: object) -> dict:
    base = {
        "id": "KI-7", "title": "a device stops after drains", "kind": "stall",
        "measured": [{"qemu": "7.2.0", "result": "absent", "how": "0 in 400"},
                     {"qemu": "10.0.13", "result": "affected", "how": "2 in 219"}],
        "shapes": ["tests/transaction_known_issues.py:X.test_x"], "upstream": {"status": "not fixed"},
        "signature": "stall class: ring-not-taken",
        "reproducer": "tests/transaction_known_issues.py:X.test_x",
        "rate": {"hits": 1, "tries": 10, "per": "boot"}, "seen": "1 of 10",
    }  # fmt: skip
    base.update(overrides)
    return base


def test_a_stall_issue_is_matched_by_the_stall_class_of_any_failure():
    issues = ki.parse(json.dumps([stall_entry()]))
    failure = DeviceStalled("storm wrote nothing to ['disk0'] within 30 s")
    failure.stall = evidence(queue(avail_idx=103))
    assert failure.reason().startswith("device stalled: storm wrote nothing")
    assert ki.listed_failure(failure.reason(), "10.0.13", issues).matched.id == "KI-7"
    assert ki.listed_failure(failure.reason(), "10.0.13", issues).status == "WARN"
    assert ki.listed_failure(failure.reason(), "7.2.0", issues).status == "FAIL"  # measured absent: a regression
    failure.stall = evidence(queue(last_avail_idx=104, avail_idx=104, inuse=4))
    assert ki.listed_failure(failure.reason(), "10.0.13", issues) is None  # another class: a new failure
    assert ki.still_reproduces(issues[0], "10.0.13") == "known issue KI-7 (a stall), still reproduces on QEMU 10.0.13"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"kind": "freeze"}, "kind must be one of crash, stall, hang, not 'freeze'"),
        ({"signature": "stall class: lost"}, "a stall's signature must be one of"),
        ({"signature": "device stalled"}, "a stall's signature must be one of"),
    ],
)  # fmt: skip
def test_a_malformed_stall_entry_is_named(overrides, message):
    with pytest.raises(ki.KnownIssuesError, match=message):
        ki.parse(json.dumps([stall_entry(**overrides)]))


def test_crash_entries_need_no_kind():
    (issue,) = ki.parse(json.dumps([{k: v for k, v in stall_entry(signature="Assertion x").items() if k != "kind"}]))
    assert issue.kind == "crash"


def test_a_failed_examination_leaves_the_stall_as_the_verdict(tmp_path):
    """QEMU that cannot be examined (a QMP error) must not replace the stall with another failure."""
    from types import SimpleNamespace

    from txnstorm.errors import QMPCommandError
    from txnstorm.scenario.rounds import Timeline
    from txnstorm.scenario.story import Storm
    from txnstorm.scenario.writers import GuestWriters

    def refuse(*_args, **_kwargs):
        raise QMPCommandError("x-query-virtio-queue-status", "GenericError", "no such queue")

    vm = SimpleNamespace(logdir=tmp_path, topology=SimpleNamespace(disks=()), cmd=refuse, write_ops=refuse,
                         note=lambda _text: None, launched_at=0.0)  # fmt: skip
    storm, writers = object.__new__(Storm), object.__new__(GuestWriters)
    storm.vm, storm.timeline, storm.writers = vm, Timeline(), writers
    writers.vm, writers.booted = vm, SimpleNamespace(guest=None)
    stalled = DeviceStalled("storm wrote nothing to ['disk0'] within 30 s")
    writers.examine(stalled, ["disk0"], storm.mark)
    assert stalled.stall is None
    assert stalled.reason() == "device stalled: storm wrote nothing to ['disk0'] within 30 s"
    assert any("examination failed" in e["what"] for e in storm.timeline.events)
