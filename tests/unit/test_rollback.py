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
