from txnstorm.runner.bench import control_rounds

EVENTS = [
    {"what": "round 1: firing", "atomic": False},
    {"what": "round 1: transaction answered"},
    {"what": "round 2: firing", "atomic": True},
    {"what": "round 3: firing", "atomic": True},
]


def test_only_checks_of_rounds_fired_separately_count():
    lines = [
        "round 1: drive-backup == frozen base: VIOLATION: first difference at offset 0",
        "round 3: cross-disk stamps/guest (frozen bases): ok: a == b",
    ]
    assert control_rounds(lines, EVENTS) == [("drive-backup == frozen base", True)]


def test_the_incremental_check_judges_the_bitmap_round_before_it():
    lines = [
        "round 2: full + incremental backup == frozen base: VIOLATION: first difference at offset 65536",
        "round 2: cross-disk stamps/guest (frozen bases): ok: a == b",
    ]
    assert control_rounds(lines, EVENTS) == [("full + incremental backup == frozen base", True)]


def test_round_cadence_side_by_side_pairs_the_same_seeds_and_gives_the_ratio(monkeypatch, tmp_path):
    import contextlib

    from txnstorm.runner import bench

    calls = []

    @contextlib.contextmanager
    def worktree(rev):
        yield tmp_path / "baseline"

    def cadence_of(tree, results, seed):
        calls.append((tree.name, seed))
        fast = tree != tmp_path / "baseline"
        return {"test_two_disks_one_iothread": {"status": "PASS", "checks": 20, "seconds": 30 if fast else 60,
                                                "checks_per_min": 40.0 if fast else 20.0,
                                                "round_to_round_s": 1.0 if fast else 2.5}}  # fmt: skip

    monkeypatch.setattr(bench, "worktree", worktree)
    monkeypatch.setattr(bench, "cadence_of", cadence_of)
    figures = bench.side_by_side("main", 2, tmp_path / "r", seed=7)
    assert calls == [("baseline", 7), (bench.REPO.name, 7), ("baseline", 8), (bench.REPO.name, 8)]
    row = figures["tests"]["test_two_disks_one_iothread"]
    assert row["checks_per_min_ratio"] == 2.0 and row["this tree"]["round_to_round_s"] == 1.0
    assert row["baseline"]["statuses"] == ["PASS", "PASS"]
    assert bench.round_starts([{"t": 1.0, "what": "round 1: firing"}, {"t": 2.0, "what": "round 1: jobs completed"},
                               {"t": 3.5, "what": "round 2: firing"}]) == [1.0, 3.5]  # fmt: skip
