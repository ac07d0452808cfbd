"""Where a guest writer process that did not end sleeps, read over SSH from ``/proc``: the
evidence that tells a writer stuck in the guest (fio 3.33 waiting in ``io_getevents`` for
completions it already reaped: issue #22) from a device that never completes its requests."""

from __future__ import annotations

from dataclasses import dataclass

IO_GETEVENTS = 208  # x86_64 syscall number, as /proc/<pid>/syscall names it
AIO_RING_MAGIC = 0xA10A10A1  # struct aio_ring's magic (fs/aio.c): id, nr, head, tail, magic, ...

# Where each guest writer process sleeps: its syscall with arguments (io_getevents: ctx, min_nr,
# nr, events, timeout), and in io_getevents the head of its AIO ring (the ring is mapped at ctx:
# id, nr, head, tail, magic; tail - head completions wait there to be reaped).
WRITER_WAITS = (
    "for p in $(pidof fio stampwriter); do set -- $(cat /proc/$p/syscall 2>/dev/null); echo wait $p $*;"
    ' [ "$1" = 208 ] && echo aio $p $(dd if=/proc/$p/mem bs=4096 skip=$(($2/4096)) count=1 2>/dev/null'
    " | od -An -tx4 -N20); done; true"
)


@dataclass(frozen=True)
class WriterWait:
    """A guest writer process that did not end: the syscall it sleeps in and, in
    ``io_getevents``, how many completions it waits for and how many its AIO ring holds."""

    pid: int
    syscall: int | None  # None: running, or not in a syscall
    min_nr: int | None = None
    ready: int | None = None  # completions in its AIO ring, not yet reaped

    @property
    def waits_for_more_than_can_come(self) -> bool:
        """In io_getevents for more completions than its ring holds (with nothing in flight, none can come)."""
        return self.syscall == IO_GETEVENTS and self.min_nr is not None and self.min_nr > (self.ready or 0)

    def describe(self) -> str:
        if self.syscall == IO_GETEVENTS:
            ring = "its AIO ring unread" if self.ready is None else f"its AIO ring holds {self.ready}"
            return f"process {self.pid} waits in io_getevents for {self.min_nr} completions, {ring}"
        return f"process {self.pid} " + ("running" if self.syscall is None else f"in syscall {self.syscall}")


def parse_writer_waits(text: str) -> list[WriterWait]:
    """``WRITER_WAITS``' output -> one WriterWait per process."""
    calls: dict[int, list[str]] = {}
    rings: dict[int, list[int]] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 2 or not fields[1].isdigit():
            continue
        if fields[0] == "wait":
            calls[int(fields[1])] = fields[2:]
        elif fields[0] == "aio" and len(fields) == 7:
            try:
                rings[int(fields[1])] = [int(word, 16) for word in fields[2:]]
            except ValueError:
                continue
    waits = []
    for pid, call in calls.items():
        nr = int(call[0]) if call and call[0].lstrip("-").isdigit() and int(call[0]) >= 0 else None
        min_nr = ready = None
        if nr == IO_GETEVENTS and len(call) > 2:
            min_nr = int(call[2], 16)
            ring = rings.get(pid)
            if ring and ring[4] == AIO_RING_MAGIC and ring[1]:
                ready = (ring[3] - ring[2]) % ring[1]
        waits.append(WriterWait(pid, nr, min_nr, ready))
    return waits
