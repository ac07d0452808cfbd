"""All or nothing: a transaction with a failing action leaves no trace.

QEMU prepares every action of a transaction and, if one fails, aborts the
ones already prepared: overlays detached, backup jobs and their filters
gone, bitmaps and internal snapshots removed, and the drained section
ended so the devices write again.  ``graph_state`` records what an action
can change; ``GraphState.differences`` says what was not rolled back.
"""

from __future__ import annotations

from dataclasses import dataclass

from txnstorm.transactions.actions import Action
from txnstorm.vm.qemu_process import QemuProcess

ABORT: Action = {"type": "abort", "data": {}}  # the action that always fails


@dataclass(frozen=True)
class GraphState:
    roots: dict[str, str]  # device -> the node it writes to
    nodes: frozenset[str]  # every named node, implicit ones included
    bitmaps: frozenset[str]  # "node/bitmap"
    snapshots: frozenset[str]  # "node@internal snapshot"
    jobs: frozenset[str]

    def differences(self, after: GraphState) -> list[str]:
        """What ``after`` has that this state did not, or lost: empty if equal."""
        found = [
            f"device {dev} writes to {after.roots.get(dev)} instead of {node}"
            for dev, node in sorted(self.roots.items())
            if after.roots.get(dev) != node
        ]
        for what, old, new in (
            ("node", self.nodes, after.nodes),
            ("dirty bitmap", self.bitmaps, after.bitmaps),
            ("internal snapshot", self.snapshots, after.snapshots),
            ("job", self.jobs, after.jobs),
        ):
            found += [f"{what} {x} appeared" for x in sorted(new - old)]
            found += [f"{what} {x} vanished" for x in sorted(old - new)]
        return found


def graph_state(vm: QemuProcess) -> GraphState:
    roots = {b["qdev"]: b["inserted"]["node-name"] for b in vm.cmd("query-block") if b.get("inserted")}
    nodes, bitmaps, snapshots = set(), set(), set()
    for info in vm.cmd("query-named-block-nodes", flat=True):
        node = info["node-name"]
        nodes.add(node)
        # A running backup job's own bitmap has no name (QMP leaves the key out): the job is in the
        # state already; on a loaded host the control's backups still run when the graph is read.
        bitmaps |= {f"{node}/{b['name']}" for b in info.get("dirty-bitmaps", []) if "name" in b}
        snapshots |= {f"{node}@{s['name']}" for s in info.get("image", {}).get("snapshots", [])}
    jobs = {job["id"] for job in vm.cmd("query-jobs")}
    return GraphState(roots, frozenset(nodes), frozenset(bitmaps), frozenset(snapshots), frozenset(jobs))


@dataclass(frozen=True)
class AbortedRound:
    round_no: int
    plan: str
    answer: str  # QEMU's error for the transaction ("" for separate commands)
    leftovers: list[str]  # what the actions changed, though the transaction failed

    def describe(self) -> str:
        what = "; ".join(self.leftovers) if self.leftovers else "graph unchanged"
        return f"round {self.round_no} ({self.plan}): {what}"
