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
