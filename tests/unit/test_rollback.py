from txnstorm.oracles.rollback import GraphState


def state(root: str = "disk0", nodes=("disk0",), bitmaps=(), snapshots=(), jobs=()) -> GraphState:
    return GraphState({"disk0-dev": root}, frozenset(nodes), frozenset(bitmaps), frozenset(snapshots), frozenset(jobs))


def test_an_identical_graph_has_no_differences():
    assert state().differences(state()) == []


def test_every_kind_of_leftover_is_named():
    after = state(root="ovl1", nodes=("disk0", "ovl1"), bitmaps=("disk0/bm",), snapshots=("disk0@s",), jobs=("j",))
    assert state().differences(after) == [
        "device disk0-dev writes to ovl1 instead of disk0",
        "node ovl1 appeared",
        "dirty bitmap disk0/bm appeared",
        "internal snapshot disk0@s appeared",
        "job j appeared",
    ]


def test_something_lost_is_named_too():
    assert state(bitmaps=("disk0/old",)).differences(state()) == ["dirty bitmap disk0/old vanished"]


def test_a_running_jobs_nameless_bitmap_is_no_error_and_no_leftover():
    """On a loaded host the control reads the graph while its backup still runs: QEMU lists the
    job's own bitmap without a name (seen on 7.2.22, 'KeyError: name' ERRORed the control)."""
    from txnstorm.oracles.rollback import graph_state

    class Vm:
        def cmd(self, command, **kw):
            return {
                "query-block": [{"qdev": "disk0-dev", "inserted": {"node-name": "disk0"}}],
                "query-named-block-nodes": [{"node-name": "disk0", "dirty-bitmaps": [
                    {"name": "bm", "granularity": 65536, "count": 0, "recording": True, "busy": False},
                    {"granularity": 65536, "count": 0, "recording": True, "busy": True}]}],
                "query-jobs": [{"id": "backup-0"}],
                "x-debug-query-block-graph": {"nodes": [], "edges": []},
            }[command]  # fmt: skip

    found = graph_state(Vm())
    assert found.bitmaps == frozenset({"disk0/bm"}) and found.jobs == frozenset({"backup-0"})


def test_a_refusal_names_its_reason():
    from pathlib import Path

    from txnstorm.oracles.rollback import ABORT_ACTION, AbortedRound, backup_to_a_missing_target

    backup = backup_to_a_missing_target("disk1", Path("/scratch/missing.qcow2"))
    assert backup.action["data"]["mode"] == "existing" and backup.action["data"]["device"] == "disk1"
    assert backup.refused_as_meant("GenericError: Could not open '/scratch/missing.qcow2': No such file")
    assert backup.refused_as_meant("GenericError: Node 'disk1' is busy: block device is in use by block job")
    assert not backup.refused_as_meant("GenericError: Transaction aborted using Abort action")
    aborted = AbortedRound(1, "plan", "GenericError: Transaction aborted using Abort action", [], ABORT_ACTION)
    assert aborted.refused_as_meant and aborted.describe() == "round 1 (plan + abort): graph unchanged"


def graph(*edges, names=("dev0", "disk0", "file0", "ro")):
    nodes = [{"id": i, "name": n, "type": "block-driver"} for i, n in enumerate(names)]
    return {"nodes": nodes, "edges": [
        {"parent": p, "child": c, "name": name, "perm": ["write", "consistent-read"], "shared-perm": []}
        for p, c, name in edges]}  # fmt: skip


def test_an_edge_left_attached_is_named_with_its_permissions():
    """The mutant ``block.c:3081`` (the attach's abort step deleted) left the read-only overlay
    holding the disk as its backing after a refused snapshot: no node, bitmap or job changed."""
    from txnstorm.oracles.rollback import graph_edges

    before = graph((0, 1, "root"), (1, 2, "file"))
    after = graph((0, 1, "root"), (1, 2, "file"), (3, 1, "backing"))
    s0 = GraphState({}, frozenset(), frozenset(), frozenset(), frozenset(), graph_edges(before))
    s1 = GraphState({}, frozenset(), frozenset(), frozenset(), frozenset(), graph_edges(after))
    assert s0.differences(s1) == ["edge ro -backing-> disk0 (perm consistent-read,write; shares -) appeared"]
    assert s0.differences(s0) == []


def test_edge_names_do_not_depend_on_the_answers_numbers():
    """The ids of x-debug-query-block-graph number one answer's nodes; a nameless node (a job's
    BlockBackend) is named by its type."""
    from txnstorm.oracles.rollback import graph_edges

    backend, disk = {"name": "", "type": "block-backend"}, {"name": "disk0", "type": "block-driver"}
    root = {"name": "root", "perm": [], "shared-perm": ["write"]}
    one = {"nodes": [{"id": 1, **backend}, {"id": 2, **disk}], "edges": [{"parent": 1, "child": 2, **root}]}
    other = {"nodes": [{"id": 7, **disk}, {"id": 9, **backend}], "edges": [{"parent": 9, "child": 7, **root}]}
    assert graph_edges(one) == graph_edges(other) == frozenset({"(block-backend) -root-> disk0 (perm -; shares write)"})


def test_a_read_only_overlay_snapshot_is_refused_for_its_reason_only():
    from txnstorm.oracles.rollback import snapshot_onto_a_read_only_overlay

    refusal = snapshot_onto_a_read_only_overlay("disk1", "ro-overlay")
    assert refusal.action == {"type": "blockdev-snapshot", "data": {"node": "disk1", "overlay": "ro-overlay"}}
    assert refusal.refused_as_meant("GenericError: Block node is read-only")
    assert not refusal.refused_as_meant("GenericError: Node 'disk1' is busy: node is used as backing hd of 'ro'")


def test_a_bitmap_a_failed_transaction_changed_is_named():
    """The abort steps of the bitmap actions (blockdev.c): enable, disable, clear and merge
    (block_dirty_bitmap_restore) and remove, each deleted, leave one of these behind."""
    from txnstorm.oracles.bitmap_state import BitmapState as B

    def with_bitmaps(**states):
        return GraphState({}, frozenset(), frozenset(states), frozenset(), frozenset(), frozenset(), states)

    before = with_bitmaps(off=B(0, False), on=B(4096, True), cleared=B(65536, False), merged=B(0, False),
                          removed=B(8192, True))  # fmt: skip
    assert before.differences(with_bitmaps(off=B(0, False), on=B(12288, True), cleared=B(65536, False),
                                           merged=B(0, False), removed=B(8192, True))) == []  # fmt: skip
    after = with_bitmaps(off=B(0, True), on=B(4096, False), cleared=B(0, False), merged=B(65536, False),
                         removed=B(8192, True, busy=True))  # fmt: skip
    assert before.differences(after) == [
        "dirty bitmap cleared (disabled) count 65536 -> 0",
        "dirty bitmap merged (disabled) count 0 -> 65536",
        "dirty bitmap off recording False -> True",
        "dirty bitmap on recording True -> False",
        "dirty bitmap removed busy False -> True",
    ]
    lost = with_bitmaps(off=B(0, False), on=B(0, True), cleared=B(65536, False), merged=B(0, False),
                        removed=B(8192, True))  # fmt: skip
    assert before.differences(lost) == ["dirty bitmap on lost bits: count 4096 -> 0"]
