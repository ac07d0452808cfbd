"""A write storm from the host through one NBD export: random 4 KiB writes,
several in flight, below a limit (the stamp regions live above it).

    python -m txnstorm.workload.nbd_storm URI LIMIT DEPTH COUNTER_FILE [--seed N] [--keep-open]

The NBD counterpart of the guest's fio storm, for exports with no guest
behind them (qemu-storage-daemon).  Every write carries its own sequence
number, so rewriting a block always changes it.  ``COUNTER_FILE`` always
holds the number of writes the server has answered (rewritten in place
every ``COUNT_EVERY_S``): the storm's own view of the export's progress,
where QEMU keeps none (an export's BlockBackend has no ``query-blockstats``).
Prints ``writes N`` and exits 0 on SIGTERM/SIGINT; ``--keep-open`` as in
``nbd_stamps`` (KI-1: a disconnect from an iothread export aborts 7.2).
"""

from __future__ import annotations

import argparse
import os
import random
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from txnstorm.workload.nbd import NbdClient
from txnstorm.workload.nbd_stamps import ChildWriter, serve_as_child, stop_requested
from txnstorm.workload.stamp_format import BLOCK

COUNT_EVERY_S = 0.05


def payload(seq: int) -> bytes:
    """One block whose every 8 bytes say ``seq``: never equal to an earlier write."""
    return struct.pack("<Q", seq) * (BLOCK // 8)


def write_until_stopped(client: NbdClient, limit: int, depth: int, counter_fd: int, rng: random.Random) -> int:
    """Keep ``depth`` random writes in flight below ``limit``; return the answered ones."""
    blocks = limit // BLOCK
    inflight: dict[int, object] = {}  # cookie -> buffer (alive until answered)
    seq = done = 0
    next_count = 0.0
    while not stop_requested():
        while len(inflight) < depth:
            seq += 1
            cookie, buf = client.aio_pwrite(payload(seq), rng.randrange(blocks) * BLOCK)
            inflight[cookie] = buf
        client.poll(100)
        for cookie in [c for c in inflight if client.completed(c)]:
            del inflight[cookie]
            done += 1
        if (now := time.monotonic()) >= next_count:
            os.pwrite(counter_fd, f"{done:20d}\n".encode(), 0)
            next_count = now + COUNT_EVERY_S
    while inflight:  # the last ones still count: the server answers them
        client.poll(1000)
        for cookie in [c for c in inflight if client.completed(c)]:
            del inflight[cookie]
            done += 1
    os.pwrite(counter_fd, f"{done:20d}\n".encode(), 0)
    return done


def run(args: argparse.Namespace) -> int:
    client = NbdClient(args.uri)
    fd = os.open(args.counter_file, os.O_WRONLY | os.O_CREAT, 0o600)

    def write() -> str:
        return f"writes {write_until_stopped(client, args.limit, args.depth, fd, random.Random(args.seed))}"

    try:
        return serve_as_child("nbd_storm", (client,), write, args.keep_open, sys.stdout)
    finally:
        os.close(fd)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m txnstorm.workload.nbd_storm", description=__doc__.split("\n\n")[0])
    p.add_argument("uri")
    p.add_argument("limit", type=lambda s: int(s, 0), help="bytes: every write ends at or below it")
    p.add_argument("depth", type=int, help="writes in flight")
    p.add_argument("counter_file", type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep-open", action="store_true", help="after stopping, keep the connection until signalled")
    args = p.parse_args(argv)
    if args.limit < BLOCK or args.depth <= 0:
        p.error(f"LIMIT must be at least {BLOCK} and DEPTH > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


@dataclass
class NbdStorm(ChildWriter):
    """One export's storm as a child process, ended by PID; ``writes()``
    reads its answered writes at any time."""

    LABEL = "NBD storm"
    REPORT = "writes"

    uri: str
    limit: int
    logdir: Path
    name: str
    depth: int = 8
    seed: int = 0
    keep_open: bool = True

    def __post_init__(self) -> None:
        self.out_path = self.logdir / f"nbd-storm-{self.name}.out"
        self.err_path = self.logdir / f"nbd-storm-{self.name}.err"
        self.counter_path = self.logdir / f"nbd-storm-{self.name}.count"
        self._proc = None

    def command(self) -> list[str]:
        args = [sys.executable, "-m", "txnstorm.workload.nbd_storm", self.uri, str(self.limit), str(self.depth)]
        args += [str(self.counter_path), "--seed", str(self.seed)]
        return args + (["--keep-open"] if self.keep_open else [])

    def start(self, timeout: float = 15.0) -> NbdStorm:
        return super().start(timeout)

    def writes(self) -> int:
        """Writes the server has answered so far."""
        try:
            return int(self.counter_path.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0


class NbdStorms:
    """One storm per export, seen as one: which exports still write, and
    how far each got (the daemon's ``write_ops``)."""

    def __init__(self, storms: dict[str, NbdStorm]) -> None:
        self.storms = storms

    def start(self) -> NbdStorms:
        for storm in self.storms.values():
            storm.start()
        return self

    def writes(self) -> dict[str, int]:
        return {disk: storm.writes() for disk, storm in self.storms.items()}

    def is_running(self) -> bool:
        return all(storm.running() for storm in self.storms.values())

    def stop(self) -> dict[str, int]:
        return {disk: storm.stop() for disk, storm in self.storms.items()}

    def close(self) -> None:
        for storm in self.storms.values():
            storm.close()


if __name__ == "__main__":
    sys.exit(main())
