"""A block job's end under a storm, with QMP asking for the graph meanwhile.

``stream_round`` grows a disk's chain by two external snapshots, streams the new top down to the
old one (``block-stream``, ``auto-dismiss=false``) at a seeded moment, and asks QEMU for its graph
back to back (``query-named-block-nodes``, ``query-block``, ``query-jobs``) from the job's start
until it is dismissed: also while the job is concluded, its copy-on-read filter dropped from the
graph but not yet freed (the shape of GitLab #3149, teeth/upstream-3149-detach-subchain).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from txnstorm.deadline import Deadline
from txnstorm.errors import DeadlineExceeded, TxnstormError
from txnstorm.scenario.story import DELAY_S, Storm
from txnstorm.transactions.actions import block_stream, snapshot_sync

QUERIES_WHILE_CONCLUDED = 5  # graph queries between the job's conclusion and its dismissal
JOB_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class StreamRound:
    """What one round's queries saw: how many ran, how many listed the job's filter node, how many
    ran while the job was concluded; the job's error when it concluded (None: it completed)."""

    round_no: int
    queries: int
    saw_filter: int
    while_concluded: int
    seconds: float
    error: str | None

    def describe(self) -> str:
        return (f"round {self.round_no}: {self.queries} graph queries, {self.saw_filter} listed the filter, "
                f"{self.while_concluded} while concluded, {self.seconds:.2f} s, error {self.error}")  # fmt: skip


def job_state(storm: Storm, job: str) -> dict[str, Any] | None:
    """The job's ``query-jobs`` entry, None once it is gone."""
    return next((j for j in storm.vm.cmd("query-jobs") if j["id"] == job), None)


def query_graph(storm: Storm) -> list[dict[str, Any]]:
    """The graph as a management tool asks for it: every named node, then every device."""
    nodes = storm.vm.cmd("query-named-block-nodes")
    storm.vm.cmd("query-block")
    return nodes


def stream_round(storm: Storm, disk: str, round_no: int, top: str) -> tuple[StreamRound, str]:
    """Two snapshots of ``disk``'s ``top`` (the guest writing into each), then block-stream of the
    new top down to ``top`` with the graph queried back to back until the job is dismissed.
    Returns what the queries saw and the disk's new top."""
    middle, new_top = f"{disk}-r{round_no}a", f"{disk}-r{round_no}b"
    for base, overlay in ((top, middle), (middle, new_top)):
        action = snapshot_sync(base, storm.scratch / f"{overlay}.qcow2", overlay)
        storm.vm.cmd(action["type"], **action["data"])
        storm.still_writing()  # the overlay takes writes: the stream has data to copy
    time.sleep(round(storm.rng.uniform(*DELAY_S), 3))  # the seeded moment
    job = f"stream{round_no}"
    stream = block_stream(new_top, top, job)
    storm.mark(f"round {round_no}: streaming", device=new_top, base=top, write_ops=storm.write_ops())
    storm.vm.note(f"block-stream {new_top} down to {top}, graph queried until dismissed")
    started, deadline = time.monotonic(), Deadline(JOB_TIMEOUT_S)
    storm.vm.cmd("block-stream", **stream)
    queries = saw_filter = while_concluded = 0
    error: str | None = None
    while while_concluded < QUERIES_WHILE_CONCLUDED:
        if deadline.passed():
            raise DeadlineExceeded(f"block-stream {job} did not conclude within {JOB_TIMEOUT_S:.0f} s")
        nodes = query_graph(storm)
        queries += 1
        saw_filter += any(n.get("node-name") == stream["filter-node-name"] for n in nodes)
        state = job_state(storm, job)
        if state is None:
            raise TxnstormError(f"job {job} vanished before job-dismiss (created with auto-dismiss=false)")
        if state["status"] == "concluded":
            while_concluded += 1
            error = state.get("error")
    seconds = round(time.monotonic() - started, 3)
    storm.vm.cmd("job-dismiss", id=job)
    query_graph(storm)
    if job_state(storm, job) is not None:
        raise TxnstormError(f"job {job} still listed after job-dismiss")
    result = StreamRound(round_no, queries, saw_filter, while_concluded, seconds, error)
    storm.mark(f"round {round_no}: job dismissed", result=result.describe())
    return result, new_top
