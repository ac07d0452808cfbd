"""All or nothing: a transaction with a failing action leaves no trace.

QEMU prepares every action of a transaction and, if one fails, aborts the
ones already prepared: overlays detached, backup jobs and their filters
gone, bitmaps and internal snapshots removed, and the drained section
ended so the devices write again.  ``graph_state`` records what an action
can change, down to every edge of the graph and its permissions (a parent
left attached to a node that stayed, as a snapshot's overlay still holding
its backing after the abort step that detaches it was skipped) and every
bitmap's state (recording, busy, its bits);
``GraphState.differences`` says what was not rolled back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from txnstorm.oracles.bitmap_state import BitmapState, states_of
from txnstorm.transactions.actions import Action
from txnstorm.vm.qemu_process import QemuProcess

ABORT: Action = {"type": "abort", "data": {}}  # the action that always fails


@dataclass(frozen=True)
class Refusal:
    """An action QEMU refuses in its own prepare step, and what its error says (one of ``says``:
    a refusal for any other reason is not the round the test meant to fire)."""

    name: str
    action: Action
    says: tuple[str, ...]

    def refused_as_meant(self, answer: str) -> bool:
        return any(words.lower() in answer.lower() for words in self.says)


ABORT_ACTION = Refusal("abort", ABORT, ("abort",))


def backup_to_a_missing_target(node: str, target: Path) -> Refusal:
    """A ``drive-backup`` of ``node`` in mode ``existing`` to a ``target`` that does not exist: it
    fails after its prepare step drained ``node`` (as every failure of it past that point: an
    operation blocker, a target it cannot create or open), and its clean step must end that
    section, or the guest's disk stays drained for good (QEMU 5.0-6.0, fixed by 2842ff2d81).  A
    plan's own backup job on ``node`` refuses it first, as "busy", after the same drain."""
    data = {"device": node, "target": str(target), "sync": "full", "mode": "existing", "format": "qcow2"}
    return Refusal("drive-backup to a missing target", {"type": "drive-backup", "data": data},
                   ("Could not open", "is busy"))  # fmt: skip


def snapshot_onto_a_read_only_overlay(node: str, overlay: str) -> Refusal:
    """A ``blockdev-snapshot`` of a guest's ``node`` onto an ``overlay`` added read-only: QEMU attaches
    ``node`` as the overlay's backing and puts the overlay under the device, and only then finds that
    the device cannot write to it; undoing that attach is the graph's own rollback
    (``bdrv_attach_child_common_abort``), which ``abort`` and the drive-backup never reach.  ``node``
    must not be snapshotted by the plan of the same round: its overlay's backing blocker refuses
    this one as "busy" before the attach."""
    data = {"node": node, "overlay": overlay}
    return Refusal("snapshot onto a read-only overlay", {"type": "blockdev-snapshot", "data": data}, ("read-only",))


@dataclass(frozen=True)
class GraphState:
    roots: dict[str, str]  # device -> the node it writes to
    nodes: frozenset[str]  # every named node, implicit ones included
    bitmaps: frozenset[str]  # "node/bitmap"
    snapshots: frozenset[str]  # "node@internal snapshot"
    jobs: frozenset[str]
    edges: frozenset[str] = frozenset()  # "parent -child-> node (perm ...; shares ...)"
    bitmap_states: Mapping[str, BitmapState] = field(default_factory=dict)  # "node/bitmap" ->

    def differences(self, after: GraphState) -> list[str]:
        """What ``after`` has that this state did not, or lost: empty if equal."""
        found = [
            f"device {dev} writes to {after.roots.get(dev)} instead of {node}"
            for dev, node in sorted(self.roots.items())
            if after.roots.get(dev) != node
        ]
        for name in sorted(self.bitmap_states.keys() & after.bitmap_states.keys()):
            found += bitmap_changes(name, self.bitmap_states[name], after.bitmap_states[name])
        for what, old, new in (
            ("node", self.nodes, after.nodes),
            ("dirty bitmap", self.bitmaps, after.bitmaps),
            ("internal snapshot", self.snapshots, after.snapshots),
            ("job", self.jobs, after.jobs),
            ("edge", self.edges, after.edges),
        ):
            found += [f"{what} {x} appeared" for x in sorted(new - old)]
            found += [f"{what} {x} vanished" for x in sorted(old - new)]
        return found


def bitmap_changes(name: str, was: BitmapState, now: BitmapState) -> list[str]:
    """What a failed transaction changed of a bitmap it must have left alone: whether it records,
    whether something holds it, and its bits (a disabled bitmap's count stays as it was; an
    enabled one's only grows, with the writes since)."""
    found = [f"dirty bitmap {name} {what} {a} -> {b}" for what, a, b in (
        ("recording", was.recording, now.recording), ("busy", was.busy, now.busy)) if a != b]  # fmt: skip
    if not (was.recording or now.recording) and was.count != now.count:
        found.append(f"dirty bitmap {name} (disabled) count {was.count} -> {now.count}")
    elif now.count < was.count:
        found.append(f"dirty bitmap {name} lost bits: count {was.count} -> {now.count}")
    return found


def graph_state(vm: QemuProcess) -> GraphState:
    roots = {b["qdev"]: b["inserted"]["node-name"] for b in vm.cmd("query-block") if b.get("inserted")}
    named = vm.cmd("query-named-block-nodes", flat=True)
    nodes = frozenset(info["node-name"] for info in named)
    snapshots = frozenset(f"{info['node-name']}@{snap['name']}"
                          for info in named for snap in info.get("image", {}).get("snapshots", []))  # fmt: skip
    # A running backup job's own bitmap has no name (QMP leaves the key out): states_of skips it, the
    # job is in the state already (on a loaded host the control's backups still run when it is read).
    bitmaps = states_of(named)
    jobs = frozenset(job["id"] for job in vm.cmd("query-jobs"))
    edges = graph_edges(vm.cmd("x-debug-query-block-graph"))
    return GraphState(roots, nodes, frozenset(bitmaps), snapshots, jobs, edges, bitmaps)


def graph_edges(graph: dict) -> frozenset[str]:
    """Every edge of ``x-debug-query-block-graph`` (QEMU 3.0+) by its nodes' names, with the
    permissions it takes and shares: the ids are numbers of one answer, the names are not."""
    names = {n["id"]: n["name"] or f"({n['type']})" for n in graph["nodes"]}
    return frozenset(
        f"{names[e['parent']]} -{e['name']}-> {names[e['child']]} "
        f"(perm {','.join(sorted(e['perm'])) or '-'}; shares {','.join(sorted(e['shared-perm'])) or '-'})"
        for e in graph["edges"]
    )


@dataclass(frozen=True)
class AbortedRound:
    round_no: int
    plan: str
    answer: str  # QEMU's error for the transaction ("" for separate commands)
    leftovers: list[str]  # what the actions changed, though the transaction failed
    refusal: Refusal = ABORT_ACTION  # the failing action the round added

    def describe(self) -> str:
        what = "; ".join(self.leftovers) if self.leftovers else "graph unchanged"
        return f"round {self.round_no} ({self.plan} + {self.refusal.name}): {what}"

    @property
    def refused_as_meant(self) -> bool:
        return self.refusal.refused_as_meant(self.answer)
