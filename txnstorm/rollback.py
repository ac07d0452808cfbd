"""All or nothing: a transaction with a failing action leaves no trace.

QEMU prepares every action of a transaction and, if one fails, aborts the
ones already prepared: overlays detached, backup jobs and their filters
gone, bitmaps and internal snapshots removed, and the drained section
ended so the devices write again.  ``graph_state`` records what an action
can change; ``GraphState.differences`` says what was not rolled back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import DeadlineExceeded, QMPCommandError, TxnstormError
from .machine import Machine
from .plans import PlanBuilder, RoundContext
from .scenario import Timeline, sample_writes, virtqueue_status, wait_until_writing
from .txn import Action, fire_separately, wait_jobs

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


def graph_state(vm: Machine) -> GraphState:
    roots = {b["qdev"]: b["inserted"]["node-name"] for b in vm.cmd("query-block") if b.get("inserted")}
    nodes, bitmaps, snapshots = set(), set(), set()
    for info in vm.cmd("query-named-block-nodes", flat=True):
        node = info["node-name"]
        nodes.add(node)
        bitmaps |= {f"{node}/{b['name']}" for b in info.get("dirty-bitmaps", [])}
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


def run_aborted_round(
    vm: Machine,
    ctx: RoundContext,
    builder: PlanBuilder,
    backup_disk: str,
    atomic: bool,
    storm_disks: Sequence[str],
    delay_s: float,
    gap_s: float,
    timeline: Timeline,
) -> AbortedRound:
    """One round: a plan's actions plus ``abort`` in one transaction (or,
    for the control, the actions alone as separate commands) during the
    storm; then the graph is compared and the devices must write again."""
    plan = builder(ctx, backup_disk)
    for command, args in plan.setup:
        vm.cmd(command, **args)
    before = graph_state(vm)
    sample_writes(vm, delay_s)
    _still_writing(vm, storm_disks)
    timeline.mark(vm, f"round {ctx.round_no}: firing", plan=plan.name, atomic=atomic, abort=atomic)
    answer = ""
    if atomic:
        try:
            vm.cmd("transaction", actions=[*plan.actions, ABORT])
        except QMPCommandError as exc:
            answer = f"{exc.error_class}: {exc.desc}"
        else:
            raise TxnstormError("QEMU accepted a transaction with an 'abort' action")
    else:
        fire_separately(vm, plan.actions, gap_s)
    leftovers = before.differences(graph_state(vm))
    timeline.mark(vm, f"round {ctx.round_no}: graph compared", leftovers=len(leftovers))
    if not atomic:
        wait_jobs(vm, plan.jobs)
        ctx.disks.update(plan.new_tops)
    _still_writing(vm, storm_disks)  # no drained section left behind, no lost request
    timeline.mark(vm, f"round {ctx.round_no}: devices write again")
    return AbortedRound(ctx.round_no, plan.name, answer, leftovers)


def _still_writing(vm: Machine, disks: Sequence[str]) -> None:
    """Every device completes writes; if one stopped, keep QEMU's view of the queues."""
    try:
        wait_until_writing(vm, disks)
    except DeadlineExceeded:
        (vm.logdir / "virtqueues.json").write_text(json.dumps(virtqueue_status(vm), indent=1) + "\n")
        raise
