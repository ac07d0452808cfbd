"""A round costs its QMP commands, its jobs and the overlap proof, not waits of its own (issue
#23): the proof that the storm wrote after a round's actions is the next reading that shows every
disk writing again (the next round's, or the stop's); only a disk that paused makes it wait."""

from types import SimpleNamespace

import pytest

from txnstorm.errors import DeviceStalled
from txnstorm.scenario.rounds import NoOverlap, Overlap, RoundRecord, Timeline
from txnstorm.scenario.story import Storm


class Counting:
    """Writers whose counters are read from a script of readings."""

    PAUSE_NOTED_S = 0.0

    def __init__(self, *readings: dict[str, int], running: bool = True) -> None:
        self.readings = list(readings)
        self.running = running

    def write_ops(self) -> dict[str, int]:
        return self.readings.pop(0)

    def is_running(self) -> bool:
        return self.running


def engine(writers: Counting, waited: list[str]) -> Storm:
    storm = object.__new__(Storm)
    storm.vm, storm.writers, storm.disks = SimpleNamespace(launched_at=0.0, note=lambda _: None), writers, ["a", "b"]
    storm.timeline, storm.records, storm.write_samples, storm.last_counts = Timeline(), [], [], None

    def still_writing() -> dict[str, int]:
        waited.append("waited")
        return writers.write_ops()

    storm.still_writing = still_writing  # type: ignore[method-assign]
    return storm


def pending(round_no: int, after: dict[str, int]) -> RoundRecord:
    return RoundRecord(round_no, SimpleNamespace(), SimpleNamespace(), Overlap({}, after, {}, False), 0.1)  # type: ignore[arg-type]


def test_the_next_reading_proves_the_last_rounds_overlap_without_a_wait():
    waited: list[str] = []
    storm = engine(Counting({"a": 12, "b": 9}), waited)
    storm.records.append(pending(1, {"a": 10, "b": 8}))
    storm.last_counts = {"a": 10, "b": 8}
    assert storm.writing_again() == {"a": 12, "b": 9}
    assert waited == [], "every disk wrote since the round's actions: one reading, no wait"
    proven = storm.records[-1].overlap
    assert proven.later == {"a": 12, "b": 9} and proven.fio_running_after
    proven.check(storm.disks)
    assert any("round 1: overlap proven" in e["what"] for e in storm.timeline.events)


def test_a_disk_that_paused_is_waited_for_and_a_stall_is_examined_there():
    waited: list[str] = []
    storm = engine(Counting({"a": 12, "b": 8}, {"a": 13, "b": 9}), waited)
    storm.records.append(pending(1, {"a": 10, "b": 8}))
    storm.last_counts = {"a": 10, "b": 8}
    assert storm.writing_again() == {"a": 13, "b": 9} and waited == ["waited"]
    storm.records[-1].overlap.check(storm.disks)

    def stalled() -> dict[str, int]:
        raise DeviceStalled("storm wrote nothing to ['b'] within 30 s")

    storm.still_writing = stalled  # type: ignore[method-assign]
    storm.writers.readings.append({"a": 14, "b": 9})
    storm.records.append(pending(2, {"a": 13, "b": 9}))
    with pytest.raises(DeviceStalled):
        storm.writing_again()


def test_a_storm_that_stopped_writing_after_the_actions_is_no_overlap():
    storm = engine(Counting({"a": 12, "b": 9}, running=False), [])
    storm.records.append(pending(1, {"a": 10, "b": 8}))
    storm.last_counts = {"a": 10, "b": 8}
    storm.writing_again()
    with pytest.raises(NoOverlap, match="fio running after=False"):
        storm.records[-1].overlap.check(storm.disks)
    with pytest.raises(NoOverlap, match=r"no writes after the actions on \['a', 'b'\]"):
        pending(2, {"a": 1, "b": 1}).overlap.check(storm.disks)  # never proven: a round the stop did not follow
