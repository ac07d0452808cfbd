"""The dependent-stamp writer on the host, through two NBD exports.

Same protocol as the guest's ``stampwriter.c`` (see ``txnstorm/stamps.py``):
A(1), B(1), A(2), B(2), ... each write answered by QEMU before the next is
sent, generation n in slot ``n % slots`` of the region at OFFSET.

    python -m txnstorm.workload.nbd_stamps URI_A URI_B OFFSET SLOTS SECONDS [--keep-open]

Prints ``generations N`` and exits 0 after SECONDS or on SIGTERM/SIGINT.
With ``--keep-open`` it then keeps both connections open until it receives
another SIGTERM/SIGINT (or is killed): on QEMU 7.2 a client disconnecting
from an export in an iothread aborts QEMU (KI-1), so a test stops the
writer, shuts QEMU down, and only then ends the writer.

``NbdStampWriter`` runs it as a child of the test (``process.spawn``: it
dies with the runner) and stops it by PID.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from txnstorm import REPO
from txnstorm.deadline import Deadline
from txnstorm.errors import DeadlineExceeded, TxnstormError
from txnstorm.host import process
from txnstorm.workload.nbd import NbdClient, NbdError
from txnstorm.workload.stamp_format import BLOCK, StampRegion, encode

STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
READY = "nbd_stamps: connected"
_REPO = REPO


class StampWriterFailed(TxnstormError):
    pass


# -- the writer ----------------------------------------------------------------
def stop_requested() -> bool:
    """True if SIGTERM/SIGINT arrived (they are blocked, so they wait here)."""
    return signal.sigtimedwait(STOP_SIGNALS, 0) is not None


def write_generations(a: NbdClient, b: NbdClient, region: StampRegion, seconds: float) -> int:
    """Stamp A(n), B(n) for n = 1, 2, ... until stopped or ``seconds`` passed."""
    deadline = Deadline(seconds)
    gen = 0
    while not stop_requested():
        gen += 1
        offset = region.offset + (gen % region.slots) * BLOCK
        a.pwrite(encode(0, gen, region.slots), offset)
        b.pwrite(encode(1, gen, region.slots), offset)
        if deadline.passed():
            break
    return gen


def serve_as_child(
    name: str, clients: Sequence[NbdClient], write: Callable[[], str], keep_open: bool, out: TextIO
) -> int:
    """The life of a host NBD writer child (this one, ``nbd_storm``): the stop signals blocked,
    ``clients`` connected, ``READY`` said on stderr, ``write`` until stopped (its report line to
    ``out``), with ``keep_open`` the connections kept until signalled again (KI-1), then closed.
    Exit status 0, or 1 when a client failed (named on stderr after ``name``)."""
    # Blocked signals cannot interrupt a libnbd call half-way: they are
    # picked up between writes, like the C writer's flag.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        for client in clients:
            client.connect()
        print(READY, file=sys.stderr, flush=True)
        print(write(), file=out, flush=True)
        if keep_open:
            signal.sigwait(STOP_SIGNALS)
        return 0
    except NbdError as exc:
        print(f"{name}: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        for client in clients:
            client.close()


def run(uris: tuple[str, str], region: StampRegion, seconds: float, keep_open: bool, out: TextIO) -> int:
    """The command: connect to both exports, write, report; return the exit status."""
    a, b = (NbdClient(uri) for uri in uris)
    return serve_as_child(
        "nbd_stamps", (a, b), lambda: f"generations {write_generations(a, b, region, seconds)}", keep_open, out
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m txnstorm.workload.nbd_stamps", description=__doc__.split("\n\n")[0])
    p.add_argument("uri_a")
    p.add_argument("uri_b")
    p.add_argument("offset", type=lambda s: int(s, 0))
    p.add_argument("slots", type=int)
    p.add_argument("seconds", type=float)
    p.add_argument("--keep-open", action="store_true", help="after stopping, keep connections open until signalled")
    args = p.parse_args(argv)
    if args.offset % BLOCK or args.slots <= 0:
        p.error("OFFSET must be 4096-aligned and SLOTS > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    region = StampRegion(args.offset, args.slots)
    return run((args.uri_a, args.uri_b), region, args.seconds, args.keep_open, sys.stdout)


# -- the test's handle on it -----------------------------------------------------
class ChildWriter:
    """A host NBD writer as a child process (``process.spawn``: it dies with
    the runner), ended by PID.  It says ``READY`` on stderr once connected
    and ``<REPORT> N`` on stdout once stopped; with ``keep_open`` it then
    keeps its connections until ``close`` (KI-1).  Subclasses name the
    command and set ``out_path``, ``err_path`` and ``keep_open``."""

    LABEL = "NBD writer"
    READY = READY
    REPORT = "generations"
    out_path: Path
    err_path: Path
    keep_open: bool
    _proc: Any = None

    def command(self) -> list[str]:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, timeout: float = 15.0) -> Any:
        """Spawn the writer and wait until its connections are up."""
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self._proc = process.spawn(self.command(), stdout=out, stderr=err, cwd=_REPO)
        deadline = Deadline(timeout)
        while self.READY not in self._stderr():
            self._raise_if_exited("while connecting")
            if deadline.passed():
                raise DeadlineExceeded(f"{self.LABEL} did not connect within {timeout:.0f} s")
            time.sleep(0.02)
        return self

    def _stderr(self) -> str:
        return self.err_path.read_text(errors="replace") if self.err_path.exists() else ""

    def _raise_if_exited(self, when: str) -> None:
        assert self._proc is not None
        if self._proc.poll() is not None and self._reported() is None:
            raise StampWriterFailed(
                f"{self.LABEL} {process.describe_exit(self._proc.returncode)} {when}: "
                f"{self._stderr().strip()[-300:] or '(no stderr)'}"
            )

    def _reported(self) -> int | None:
        if not self.out_path.exists():
            return None
        for line in self.out_path.read_text(errors="replace").splitlines():
            if line.startswith(f"{self.REPORT} "):
                return int(line.split()[1])
        return None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM; return the count it reported.  With ``keep_open`` the
        process (and its connections) stays alive until ``close``."""
        assert self._proc is not None, "writer not started"
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
        deadline = Deadline(timeout)
        while (count := self._reported()) is None:
            self._raise_if_exited("before reporting")
            if deadline.passed():
                raise DeadlineExceeded(f"{self.LABEL} did not report within {timeout:.0f} s")
            time.sleep(0.02)
        if not self.keep_open:
            self._proc.wait(timeout)
        return count

    def close(self) -> int | None:
        """End the process by PID (SIGTERM, then SIGKILL) and reap it."""
        if self._proc is None:
            return None
        return process.end(self._proc, grace=5.0)


@dataclass
class NbdStampWriter(ChildWriter):
    """The host stamp writer as a child process, ended by PID."""

    LABEL = "NBD stamp writer"

    uri_a: str
    uri_b: str
    region: StampRegion
    logdir: Path
    keep_open: bool = False
    seconds: float = 86400.0

    def __post_init__(self) -> None:
        self.out_path = self.logdir / "nbd-stamps.out"
        self.err_path = self.logdir / "nbd-stamps.err"
        self.generations: int | None = None
        self._proc = None

    def command(self) -> list[str]:
        args = [sys.executable, "-m", "txnstorm.workload.nbd_stamps", self.uri_a, self.uri_b]
        args += [str(self.region.offset), str(self.region.slots), str(self.seconds)]
        return args + (["--keep-open"] if self.keep_open else [])

    def start(self, timeout: float = 15.0) -> NbdStampWriter:
        return super().start(timeout)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM; return the generations written."""
        self.generations = super().stop(timeout)
        return self.generations


if __name__ == "__main__":
    sys.exit(main())
