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
                    {"name": "bm", "granularity": 65536}, {"granularity": 65536, "busy": True}]}],
                "query-jobs": [{"id": "backup-0"}],
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
