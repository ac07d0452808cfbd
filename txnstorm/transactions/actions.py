"""Transaction actions, firing them (atomically or not), waiting for their jobs.

An action is the QMP dict ``{"type": ..., "data": {...}}`` that ``transaction``
takes.  ``fire_transaction`` sends all of them in one command: QEMU promises
one point in time.  ``fire_separately`` sends the very same actions as single
commands with a gap: no such promise, which is what negative controls use.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from txnstorm.deadline import Deadline
from txnstorm.errors import TxnstormError
from txnstorm.vm.qemu_process import QemuProcess

Action = dict[str, Any]
JOB_ACTIONS = {"drive-backup", "blockdev-backup"}


class JobFailed(TxnstormError):
    pass


def snapshot_sync(node: str, snapshot_file: Path, snapshot_node: str, fmt: str = "qcow2") -> Action:
    """External snapshot: ``node`` freezes, a new overlay takes the writes."""
    return {
        "type": "blockdev-snapshot-sync",
        "data": {
            "node-name": node,
            "snapshot-file": str(snapshot_file),
            "snapshot-node-name": snapshot_node,
            "format": fmt,
            "mode": "absolute-paths",
        },
    }


def filter_node(job_id: str) -> str:
    """Name of the copy-before-write filter a backup job inserts above its source.

    Named so that later actions can address the device's data through it:
    after the filter is inserted the source is no longer a root node.
    """
    return f"{job_id}-cbw"


def drive_backup(device: str, target: Path, job_id: str, sync: str = "full", fmt: str = "qcow2") -> Action:
    """Point-in-time copy of ``device`` (a root node) into a new image."""
    return {
        "type": "drive-backup",
        "data": {
            "device": device,
            "target": str(target),
            "job-id": job_id,
            "sync": sync,
            "format": fmt,
            "mode": "absolute-paths",
            "filter-node-name": filter_node(job_id),
        },
    }


def blockdev_snapshot(node: str, overlay_node: str) -> Action:
    """External snapshot onto an overlay node already added with blockdev-add."""
    return {"type": "blockdev-snapshot", "data": {"node": node, "overlay": overlay_node}}


def snapshot_internal(node: str, name: str) -> Action:
    """Internal (qcow2) snapshot ``name`` of ``node``."""
    return {"type": "blockdev-snapshot-internal-sync", "data": {"device": node, "name": name}}


def blockdev_backup(  # noqa: PLR0913 - the QMP command's own arguments
    device: str, target_node: str, job_id: str, sync: str = "full", bitmap: str | None = None,
    *, bitmap_mode: str | None = None,
) -> Action:
    """Backup of ``device`` into a target node already added with blockdev-add; ``bitmap_mode``
    ``never`` leaves the bitmap as the job found it (``on-success``, QEMU's default for an
    incremental, clears it)."""
    data: dict[str, Any] = {
        "device": device,
        "target": target_node,
        "job-id": job_id,
        "sync": sync,
        "filter-node-name": filter_node(job_id),
    }
    if bitmap:
        data["bitmap"] = bitmap
    if bitmap_mode:
        data["bitmap-mode"] = bitmap_mode
    return {"type": "blockdev-backup", "data": data}


# The storm's writes are 4 KiB.  With the default granularity (a qcow2 cluster, 64 KiB) one later
# write to a chunk re-copies every block of it: on a loaded host, with seconds between the bitmap
# round and the incremental one, the incremental copied 1019 of 1024 chunks and the bitmap control
# could no longer see the writes its separate commands let through (7.2.22, issue #22).
BITMAP_GRANULARITY = 4096


def dirty_bitmap_add(
    node: str, name: str, granularity: int | None = BITMAP_GRANULARITY, disabled: bool = False
) -> Action:
    """Start tracking writes to ``node`` from the transaction's point in time, per ``granularity``
    bytes (None: QEMU's default, the image's cluster size); ``disabled``: track nothing until a
    ``block-dirty-bitmap-enable``."""
    data: dict[str, Any] = {"node": node, "name": name}
    if granularity is not None:
        data["granularity"] = granularity
    if disabled:
        data["disabled"] = True
    return {"type": "block-dirty-bitmap-add", "data": data}


def dirty_bitmap_enable(node: str, name: str) -> Action:
    """A disabled bitmap starts tracking writes from the transaction's point in time."""
    return {"type": "block-dirty-bitmap-enable", "data": {"node": node, "name": name}}


def dirty_bitmap_disable(node: str, name: str) -> Action:
    """The bitmap stops tracking: it keeps the writes up to the transaction's point in time."""
    return {"type": "block-dirty-bitmap-disable", "data": {"node": node, "name": name}}


def dirty_bitmap_clear(node: str, name: str) -> Action:
    """The bitmap forgets every write before the transaction's point in time (and keeps tracking)."""
    return {"type": "block-dirty-bitmap-clear", "data": {"node": node, "name": name}}


def dirty_bitmap_merge(node: str, target: str, sources: Sequence[str | dict[str, str]]) -> Action:
    """``target`` gains the writes of each of ``sources`` (bitmaps of ``node``, or ``{"node": ...,
    "name": ...}`` of another node of the same size) as of the transaction."""
    return {"type": "block-dirty-bitmap-merge", "data": {"node": node, "target": target, "bitmaps": list(sources)}}


def dirty_bitmap_remove(node: str, name: str) -> Action:
    """The bitmap is gone once the transaction commits (held busy until then)."""
    return {"type": "block-dirty-bitmap-remove", "data": {"node": node, "name": name}}


def as_command(action: Action) -> tuple[str, dict[str, Any]]:
    """The action as a plain QMP command (a plan's ``setup``)."""
    return action["type"], dict(action["data"])


def job_ids(actions: Sequence[Action]) -> list[str]:
    return [a["data"]["job-id"] for a in actions if a["type"] in JOB_ACTIONS]


@dataclass(frozen=True)
class Fired:
    """When the actions were sent and answered (host monotonic clock)."""

    mode: str  # "transaction" or "separate"
    sent_at: float
    done_at: float
    actions: tuple[Action, ...]


def fire_transaction(vm: QemuProcess, actions: Sequence[Action]) -> Fired:
    vm.note(f"transaction of {len(actions)} actions")
    sent = time.monotonic()
    vm.cmd("transaction", actions=list(actions))
    return Fired("transaction", sent, time.monotonic(), tuple(actions))


def fire_separately(
    vm: QemuProcess, actions: Sequence[Action], gap_s: float, before_each: Callable[[int], None] | None = None,
    after_each: Callable[[int], None] | None = None,
) -> Fired:  # fmt: skip
    """The negative control: the same actions, one command each, ``gap_s`` apart (from one's answer
    to the next one's sending).  ``before_each(i)`` runs right before command ``i`` is sent,
    ``after_each(i)`` once it was answered: both only make the gap longer."""
    vm.note(f"{len(actions)} actions as separate commands, {gap_s} s apart")
    sent = answered = time.monotonic()
    for i, action in enumerate(actions):
        if i:
            time.sleep(max(0.0, gap_s - (time.monotonic() - answered)))
        if before_each is not None:
            before_each(i)
        vm.cmd(action["type"], **action["data"])
        answered = time.monotonic()
        if after_each is not None:
            after_each(i)
    return Fired("separate", sent, time.monotonic(), tuple(actions))


SNAPSHOT_NODE_KEYS = {"blockdev-snapshot-sync": "node-name", "blockdev-snapshot": "node",
                      "blockdev-snapshot-internal-sync": "device"}  # fmt: skip


def snapshot_index(actions: Sequence[Action], node: str) -> int | None:
    """The index of the action that snapshots ``node`` (externally or internally), if any."""
    for i, action in enumerate(actions):
        key = SNAPSHOT_NODE_KEYS.get(action["type"])
        if key is not None and action["data"].get(key) == node:
            return i
    return None


def wait_jobs(vm: QemuProcess, ids: Sequence[str], timeout: float = 120.0) -> dict[str, dict[str, Any]]:
    """Wait for BLOCK_JOB_COMPLETED of every job; a job error raises JobFailed."""
    done = {}
    deadline = Deadline(timeout)
    for job_id in ids:
        remaining = deadline.remaining(at_least=0.1)
        event = vm.wait_event(
            "BLOCK_JOB_COMPLETED",
            match={"data": {"device": job_id}},
            timeout=remaining,
            what=f"job {job_id} to complete",
        )
        if event["data"].get("error"):
            raise JobFailed(f"job {job_id} failed: {event['data']['error']}")
        done[job_id] = event
    return done


def block_stream(top: str, base: str, job_id: str, auto_dismiss: bool = False) -> dict[str, Any]:
    """``block-stream``'s arguments: copy into ``top`` the data of its backing chain down to (not
    including) ``base``, through a copy-on-read filter named ``<job_id>-cor`` above ``top``.
    ``auto_dismiss=False`` (as libvirt creates its jobs): the job waits, concluded, for
    ``job-dismiss``."""
    return {"job-id": job_id, "device": top, "base-node": base, "filter-node-name": f"{job_id}-cor",
            "auto-dismiss": auto_dismiss}  # fmt: skip
