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

from .errors import DeadlineExceeded, TxnstormError
from .guest import GuestSession

GUEST_DIR = "/tmp/txnstorm"


class StormFailed(TxnstormError):
    pass


class StormHung(DeadlineExceeded):
    """The storm did not end; ``evidence`` holds the guest's view (ps, stacks, fio log)."""

    def __init__(self, message: str, evidence: str) -> None:
        super().__init__(message)
        self.evidence = evidence


@dataclass(frozen=True)
class FioJob:
    """A fio write storm over named guest block devices."""

    name: str
    devices: dict[str, str]  # job name (disk name) -> /dev/vdX
    rw: str = "randwrite"
    bs: str = "4k"
    iodepth: int = 8
    runtime_s: int = 10
    ioengine: str = "libaio"
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


class RunningStorm:
    """A fio storm started in the guest; ``wait`` returns its parsed result."""

    def __init__(self, session: GuestSession, job: FioJob) -> None:
        self.session = session
        self.job = job
        base = f"{GUEST_DIR}/{job.name}"
        self.jobfile, self.output, self.rc_file = f"{base}.fio", f"{base}.json", f"{base}.rc"
        session.run(f"mkdir -p {GUEST_DIR}").check()
        session.upload(job.jobfile().encode(), self.jobfile)
        inner = (
            f"fio --output-format=json --output={self.output} {self.jobfile} > {base}.log 2>&1;"
            f" echo $? > {self.rc_file}"
        )
        started = session.run(
            f"rm -f {self.rc_file}; setsid sh -c {shlex.quote(inner)} </dev/null >/dev/null 2>&1 & echo $!"
        ).check()
        self.pid = int(started.stdout.strip())
        self.started_at = time.monotonic()

    def is_running(self) -> bool:
        """fio's wrapper writes the rc file when fio exits; a vanished PID
        without one means the wrapper itself was killed."""
        probe = f"[ -e {self.rc_file} ] && echo done || {{ kill -0 {self.pid} 2>/dev/null && echo running; }}"
        return self.session.run(probe).stdout.strip() == "running"

    def diagnose(self) -> str:
        """Guest-side state of the storm, for a failure report."""
        out = self.session.run(
            f"ps -o pid,ppid,stat,args; for p in $(pidof fio); do echo == $p; cat /proc/$p/stack /proc/$p/wchan;"
            f" echo; done; echo == log; cat {GUEST_DIR}/{self.job.name}.log",
            timeout=30,
        )
        return out.stdout + out.stderr

    def wait(self, timeout: float) -> FioResult:
        deadline = time.monotonic() + timeout
        while self.is_running():
            if time.monotonic() > deadline:
                raise StormHung(
                    f"fio storm {self.job.name} still running {timeout:.0f} s after it should have ended",
                    self.diagnose(),
                )
            time.sleep(0.5)
        rc = self.session.run(f"cat {self.rc_file}")
        status = int(rc.stdout.strip()) if rc.status == 0 and rc.stdout.strip() else -1
        text = self.session.run(f"cat {self.output}").stdout
        if status != 0 and not text:
            text = self.session.run(f"cat {GUEST_DIR}/{self.job.name}.log").stdout
        return FioResult.parse(status, text)

    def stop(self) -> None:
        self.session.run(f"kill {self.pid} 2>/dev/null; pkill -INT fio 2>/dev/null; true")
