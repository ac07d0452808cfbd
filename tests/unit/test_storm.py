import json

import pytest

from txnstorm.workload.fio import FioJob, FioResult, StormFailed, parse_fio_json


def test_jobfile_writes_direct_random_fresh_data_to_each_device():
    text = FioJob("s", {"disk0": "/dev/vdb", "disk1": "/dev/vda"}, runtime_s=7).jobfile()
    assert "direct=1" in text and "rw=randwrite" in text and "runtime=7" in text
    assert "randrepeat=0" in text and "scramble_buffers=1" in text
    assert text.index("[disk0]\nfilename=/dev/vdb") < text.index("[disk1]\nfilename=/dev/vda")


def doc(ios: int, error: int = 0) -> dict:
    return {"jobs": [{"jobname": "disk0", "error": error, "write": {"total_ios": ios, "iops": 12.5}}]}


def test_concatenated_status_documents_are_all_parsed():
    text = "fio: warning\n" + json.dumps(doc(1)) + "\n" + json.dumps(doc(5))
    assert [d["jobs"][0]["write"]["total_ios"] for d in parse_fio_json(text)] == [1, 5]


def test_result_uses_the_last_document():
    result = FioResult.parse(0, json.dumps(doc(1)) + json.dumps(doc(9)))
    assert result.jobs["disk0"].write_ios == 9
    assert result.check() is result


def test_job_error_or_exit_status_fails_the_storm():
    with pytest.raises(StormFailed, match="job errors"):
        FioResult.parse(0, json.dumps(doc(3, error=5))).check()
    with pytest.raises(StormFailed, match="exited 1"):
        FioResult.parse(1, json.dumps(doc(3))).check()


def test_no_json_is_a_failure_not_an_empty_pass():
    with pytest.raises(StormFailed, match="no JSON"):
        FioResult.parse(1, "fio: failed to open /dev/vdz")


class StuckGuest:
    """A guest whose fio never ends and whose `ps` hangs (a process stuck in D state)."""

    def __init__(self) -> None:
        self.commands: list[str] = []

    def run(self, command: str, timeout: float = 60.0, stdin: bytes | None = None):
        from txnstorm.errors import DeadlineExceeded
        from txnstorm.vm.ssh import Result

        self.commands.append(command)
        if command.startswith("ps "):
            raise DeadlineExceeded(f"guest command {command!r} still running after {timeout:.0f} s")
        if "inflight" in command:
            return Result(command, 0, "vda disk0 0 3\nvdb disk1 0 0\n", "")
        if "echo running" in command:
            return Result(command, 0, "running\n", "")
        return Result(command, 0, "12\n", "")


def test_a_storm_that_never_ends_is_a_device_stall_even_when_the_guest_cannot_say_why():
    """A hung `ps` in the diagnosis must not turn the stall into a suite ERROR."""
    from txnstorm.errors import DeviceStalled
    from txnstorm.workload.fio import Detached, StormHung

    guest = StuckGuest()
    storm = Detached(guest, "storm", "fio job.fio")  # type: ignore[arg-type]
    with pytest.raises(StormHung) as hung:
        storm.wait(timeout=0)
    assert isinstance(hung.value, DeviceStalled)
    assert "vda disk0 0 3" in hung.value.evidence, "the in-flight requests are kept"
    assert "== processes\n(no answer: guest command 'ps" in hung.value.evidence


class RecordingGuest:
    """A guest that answers every command and keeps what it was told."""

    def __init__(self) -> None:
        self.commands: list[str] = []

    def run(self, command: str, timeout: float = 60.0, stdin: bytes | None = None):
        from txnstorm.vm.ssh import Result

        self.commands.append(command)
        return Result(command, 0, "42\n", "")


def test_a_stop_signals_the_command_it_started_never_every_process_of_its_name():
    """fio runs a process per job; a SIGINT of its own reaching a job after fio's parent told it to
    end can leave it waiting in io_getevents forever (issue #22): only the parent is signalled."""
    from txnstorm.workload.fio import Detached

    guest = RecordingGuest()
    storm = Detached(guest, "storm", "fio job.fio")  # type: ignore[arg-type]
    started = guest.commands[-1]
    assert "echo $$ > /tmp/txnstorm/storm.pid; exec fio job.fio" in started, "the command records its own PID"
    assert "rm -f /tmp/txnstorm/storm.rc /tmp/txnstorm/storm.pid" in started, "no stale PID from an earlier run"
    storm.signal()
    stop = guest.commands[-1]
    assert "kill -INT $(cat /tmp/txnstorm/storm.pid)" in stop
    assert "pidof" not in stop
    assert storm.stop_requested
