"""Write storms: fio job definitions, running them in the guest, their results.

fio runs detached in the guest (``setsid``), so the SSH channel that started
it is free at once and the storm keeps writing while QMP commands fire.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass, field
from typing import Any

from txnstorm.deadline import Deadline
from txnstorm.errors import DeviceStalled, TxnstormError
from txnstorm.vm.ssh import GuestSession
from txnstorm.vm.topology import GUEST_DISK_LOOP
from txnstorm.workload.writer_waits import WRITER_WAITS, WriterWait, parse_writer_waits

GUEST_DIR = "/tmp/txnstorm"
WAITS_TITLE = "where each writer waits (syscall and arguments; aio: id nr head tail magic of its AIO ring)"


class StormFailed(TxnstormError):
    pass


class StormHung(DeviceStalled):
    """The storm did not end: a request that never completes.  ``evidence``
    holds the guest's view (ps, kernel stacks, fio log, in-flight requests)."""

    def __init__(self, message: str, evidence: str) -> None:
        super().__init__(message)
        self.evidence = evidence

    @property
    def writer_waits(self) -> list[WriterWait]:
        """Where the guest's writer processes sleep, from the evidence (empty: not read)."""
        _, found, rest = self.evidence.partition(f"== {WAITS_TITLE}\n")
        return parse_writer_waits(rest.split("\n== ", 1)[0]) if found else []


@dataclass(frozen=True)
class FioJob:
    """A fio write storm over named guest block devices."""

    name: str
    devices: dict[str, str]  # job name (disk name) -> /dev/vdX or /dev/sdX
    rw: str = "randwrite"
    bs: str = "4k"
    iodepth: int = 8
    runtime_s: int = 10
    ioengine: str = "libaio"
    size: int | None = None  # bytes from the start of each device (keeps off a stamp region)
    extra: dict[str, str] = field(default_factory=dict)

    def jobfile(self) -> str:
        options = {
            "ioengine": self.ioengine,
            "direct": "1",
            "rw": self.rw,
            "bs": self.bs,
            "iodepth": str(self.iodepth),
            "time_based": "1",
            "runtime": str(self.runtime_s),
            # Fresh offsets and fresh bytes: a write after the point in time
            # must be able to change what a capture holds.
            "norandommap": "1",
            "randrepeat": "0",
            "scramble_buffers": "1",
            **({"size": str(self.size)} if self.size else {}),
            **self.extra,
        }
        lines = ["[global]", *(f"{k}={v}" for k, v in options.items()), ""]
        for job, device in sorted(self.devices.items()):
            lines += [f"[{job}]", f"filename={device}", ""]
        return "\n".join(lines)


def parse_fio_json(text: str) -> list[dict[str, Any]]:
    """All JSON documents in fio output (``--status-interval`` concatenates them)."""
    decoder = json.JSONDecoder()
    docs, pos = [], 0
    while True:
        start = text.find("{", pos)
        if start < 0:
            return docs
        doc, pos = decoder.raw_decode(text, start)
        docs.append(doc)


@dataclass(frozen=True)
class JobResult:
    name: str
    error: int
    write_ios: int
    write_iops: float


@dataclass(frozen=True)
class FioResult:
    status: int
    jobs: dict[str, JobResult]
    raw: str

    @classmethod
    def parse(cls, status: int, text: str) -> FioResult:
        docs = parse_fio_json(text)
        if not docs:
            raise StormFailed(f"fio (exit {status}) produced no JSON: {text.strip()[:300]!r}")
        jobs = {}
        for job in docs[-1].get("jobs", []):
            write = job.get("write", {})
            jobs[job["jobname"]] = JobResult(
                name=job["jobname"],
                error=int(job.get("error", 0)),
                write_ios=int(write.get("total_ios", 0)),
                write_iops=float(write.get("iops", 0.0)),
            )
        return cls(status=status, jobs=jobs, raw=text)

    def check(self) -> FioResult:
        bad = {n: j.error for n, j in self.jobs.items() if j.error}
        if self.status != 0 or bad:
            raise StormFailed(f"fio exited {self.status}, job errors {bad}")
        return self


class Detached:
    """A command running detached (``setsid``) in the guest.

    Its wrapper writes the command's exit status to ``<base>.rc`` when it
    ends, so "finished" never depends on a PID check (a zombie looks alive).
    The command itself writes its PID to ``<base>.pid`` (a shell that
    ``exec``s it): ``signal`` reaches that one process, never every process
    of the program's name.  fio runs each job in a process of its own; a
    SIGINT that reaches a job process after its parent told it to end can
    interrupt the job's last ``io_getevents`` with part of its completions
    reaped, and fio 3.33 then waits for all of them again, forever (issue
    #22).  fio's parent tells its jobs to end through shared memory.
    """

    def __init__(self, session: GuestSession, name: str, command: str) -> None:
        self.session = session
        self.name = name
        self.base = f"{GUEST_DIR}/{name}"
        self.rc_file, self.log_file = f"{self.base}.rc", f"{self.base}.log"
        self.pid_file = f"{self.base}.pid"
        program = f"echo $$ > {self.pid_file}; exec {command}"
        inner = f"sh -c {shlex.quote(program)} > {self.log_file} 2>&1; echo $? > {self.rc_file}"
        started = session.run(
            f"mkdir -p {GUEST_DIR}; rm -f {self.rc_file} {self.pid_file};"
            f" setsid sh -c {shlex.quote(inner)} </dev/null >/dev/null 2>&1 & echo $!"
        ).check()
        self.pid = int(started.stdout.strip())
        self.started_at = time.monotonic()
        self.stop_requested = False

    def is_running(self) -> bool:
        probe = f"[ -e {self.rc_file} ] && echo done || {{ kill -0 {self.pid} 2>/dev/null && echo running; }}"
        return self.session.run(probe).stdout.strip() == "running"

    def signal(self, sig: str = "INT") -> None:
        """Ask the command to stop (fio and stampwriter report on SIGINT): the
        signal goes to the command's own process only (its PID file; waited
        for a moment if the command has only just started)."""
        self.stop_requested = True
        self.session.run(self.signal_command(sig))

    def signal_command(self, sig: str = "INT") -> str:
        pid = self.pid_file
        wait = f"for i in 1 2 3 4 5 6 7 8 9 10; do [ -s {pid} ] && break; sleep 0.5; done"
        return f"{wait}; kill -{sig} $(cat {pid}) 2>/dev/null; true"

    DIAGNOSIS = (
        # sysfs first: it answers even when a process is stuck in D state
        ("requests in flight (read write) per disk",
         GUEST_DISK_LOOP + " echo $n $s $(cat $b/inflight); done"),
        # which disk a stuck worker waits on: the block devices it holds open
        ("kernel stacks", "for p in $(pidof fio stampwriter); do echo == $p; cat /proc/$p/stack /proc/$p/wchan;"
         " echo; ls -l /proc/$p/fd 2>/dev/null | grep /dev/[sv]d; done"),
        # where each writer sleeps: its syscall and arguments, io_getevents' AIO ring (what it waits for)
        (WAITS_TITLE, WRITER_WAITS),
        ("processes", "ps -o pid,ppid,stat,args"),
        # what the guest kernel said (the console shows errors only): SCSI timeouts, aborts, resets
        ("kernel log", "dmesg | tail -n 60"),
        ("log", "cat {log}"),
    )  # fmt: skip

    def diagnose(self, step_timeout: float = 10.0) -> str:
        """Guest-side state, for a failure report: the requests each disk has
        in flight (a lost request shows there), kernel stacks, processes,
        log.  Each step is bounded: a guest stuck on I/O can hang one (``ps``
        reading a stuck process), and what the others said is kept."""
        parts = []
        for title, command in self.DIAGNOSIS:
            try:
                out = self.session.run(command.replace("{log}", self.log_file), timeout=step_timeout)
                said = out.stdout + out.stderr
            except TxnstormError as exc:
                said = f"(no answer: {exc})\n"
            parts.append(f"== {title}\n{said}")
        return "".join(parts)

    def wait(self, timeout: float) -> tuple[int, str]:
        """(exit status, log) once the command ended; StormHung if it does not."""
        deadline = Deadline(timeout)
        while self.is_running():
            if deadline.passed():
                raise StormHung(
                    f"{self.name} still running {timeout:.0f} s after it was told to end (requests that never "
                    "complete?)",
                    self.diagnose(),
                )
            time.sleep(0.3)
        rc = self.session.run(f"cat {self.rc_file}")
        status = int(rc.stdout.strip()) if rc.status == 0 and rc.stdout.strip() else -1
        return status, self.session.run(f"cat {self.log_file}").stdout


class RunningStorm:
    """A fio storm started in the guest; ``finish`` returns its parsed result."""

    def __init__(self, session: GuestSession, job: FioJob) -> None:
        self.job = job
        self.jobfile, self.output = f"{GUEST_DIR}/{job.name}.fio", f"{GUEST_DIR}/{job.name}.json"
        session.run(f"mkdir -p {GUEST_DIR}").check()
        session.upload(job.jobfile().encode(), self.jobfile)
        self.process = Detached(session, job.name, f"fio --output-format=json --output={self.output} {self.jobfile}")

    def is_running(self) -> bool:
        return self.process.is_running()

    def stop(self) -> None:
        self.process.signal()

    def wait(self, timeout: float) -> FioResult:
        status, log = self.process.wait(timeout)
        text = self.process.session.run(f"cat {self.output}").stdout or log
        # fio exits non-zero when we interrupt it, after writing its JSON.
        stopped_by_us = self.process.stop_requested and status != 0 and bool(parse_fio_json(text))
        return FioResult.parse(0 if stopped_by_us else status, text)


class RunningStamps:
    """The guest stamp writer on two disks (see txnstorm/stamps.py)."""

    PROGRAM = "stampwriter"

    def __init__(self, session: GuestSession, dev_a: str, dev_b: str, offset: int, slots: int) -> None:
        self.process = Detached(session, "stamps", f"{self.PROGRAM} {dev_a} {dev_b} {offset} {slots} 86400")

    def completed_writes(self) -> int | None:
        """Stamp writes the writer has completed so far: its write syscalls (``syscw`` of
        ``/proc/<pid>/io``; a pwrite counts once it returned, and with O_DIRECT it returns once the
        device completed it); None when the guest does not say."""
        pid = self.process.pid_file
        try:
            said = self.process.session.run(f"cat /proc/$(cat {pid})/io", timeout=10).stdout
        except TxnstormError:
            return None
        for line in said.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "syscw" and value.strip().isdigit():
                return int(value)
        return None

    def stop(self, timeout: float = 30.0) -> int:
        """Stop the writer; return how many generations it wrote."""
        self.process.signal()
        status, log = self.process.wait(timeout)
        if status != 0 or not log.startswith("generations "):
            raise StormFailed(f"stamp writer exited {status}: {log.strip()[:300]}")
        return int(log.split()[1])
