import json
import sys
from pathlib import Path

import pytest

from txnstorm.errors import UserError
from txnstorm.runner import runs
from txnstorm.runner.runs import parse_avocado_list_json, parse_duration, parse_shard, replays, shard


@pytest.mark.parametrize(("text", "seconds"), [("2h", 7200), ("10m", 600), ("1h30m", 5400), ("90s", 90), ("45", 45)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "10x", "h", "-5m", "0m", "ten minutes"])
def test_bad_durations_are_one_clear_error(text):
    with pytest.raises(UserError, match="DURATION"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["", "0/3", "4/3", "a/b", "1/0", "2"])
def test_bad_shards(text):
    with pytest.raises(UserError, match="SHARD"):
        parse_shard(text)


@pytest.mark.parametrize("count", [1, 2, 3, 5, 13])
def test_shards_partition_the_suite(count):
    ids = [f"tests/t{i % 7}.py:C.test_{i}" for i in range(40)]
    parts = [shard(list(reversed(ids)), i, count) for i in range(1, count + 1)]
    flat = [t for p in parts for t in p]
    assert sorted(flat) == sorted(set(ids)), "every test in exactly one shard"
    assert len(flat) == len(set(flat))
    assert parts == [shard(ids, i, count) for i in range(1, count + 1)], "independent of input order"
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_avocado_list_json_parsing():
    text = json.dumps([
        {"Type": "avocado-instrumented", "Test": "tests/a.py:A.test_x"},
        {"Type": "avocado-instrumented", "Test": "tests/b.py:B.test_y"},
    ])  # fmt: skip
    assert parse_avocado_list_json(text) == ["tests/a.py:A.test_x", "tests/b.py:B.test_y"]
    with pytest.raises(UserError, match="no JSON"):
        parse_avocado_list_json("avocado-instrumented tests/a.py:A.test_x")


def test_replay_commands_carry_the_seed(tmp_path):
    tests = [
        {"id": "1-tests/a.py:A.test_x", "status": "FAIL", "whiteboard": json.dumps({"seed": 42})},
        {"id": "2-tests/a.py:A.test_y", "status": "PASS", "whiteboard": json.dumps({"seed": 7})},
        {"id": "3-tests/b.py:B.test_z", "status": "ERROR", "whiteboard": ""},
    ]
    (tmp_path / "results.json").write_text(json.dumps({"tests": tests}))
    found = replays(tmp_path)
    assert [r.test for r in found] == ["tests/a.py:A.test_x", "tests/b.py:B.test_z"]
    assert found[0].command == "make run TEST=tests/a.py:A.test_x SEED=42"
    assert found[1].seed is None and "SEED" not in found[1].command


def test_replay_of_a_dir_without_results_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no results.json"):
        replays(tmp_path)


def test_tags_are_checked_against_the_tests(tmp_path):
    from txnstorm.runner.runs import check_tags

    f = tmp_path / "t.py"
    f.write_text(
        'class A:\n    """\n    :avocado: tags=quick,nbd\n    """\n'
        '    def test_x(self):\n        """:avocado: tags=nightly"""\n'
    )
    assert check_tags("quick,-nbd nightly", [f]) == ["quick,-nbd", "nightly"]
    with pytest.raises(UserError, match="unknown tag 'quik'"):
        check_tags("quik", [f])


def test_the_real_suite_has_the_tiers():
    from pathlib import Path

    from txnstorm.runner.runs import known_tags

    tests = sorted((Path(__file__).resolve().parents[1]).glob("*.py"))
    assert {"quick", "nightly", "control"} <= known_tags(tests)


def test_capabilities_from_a_schema():
    from txnstorm.vm.caps import from_schema

    schema = [
        {"name": "transaction", "meta-type": "command"},
        {"name": "query-block", "meta-type": "command"},
        {"name": "123", "meta-type": "enum", "members": [{"name": "abort"}, {"name": "blockdev-snapshot-sync"}]},
        {"name": "124", "meta-type": "enum", "members": [{"name": "on"}, {"name": "off"}]},
    ]
    caps = from_schema("7.2.0", schema)
    assert caps.transaction_actions == {"abort", "blockdev-snapshot-sync"}
    assert caps.missing(("query-block", "block-export-add"), ("drive-backup",)) == [
        "QMP command block-export-add",
        "transaction action drive-backup",
    ]


def test_aio_backends_from_a_schema():
    """BlockdevAioOptions lists io_uring only in a QEMU built with liburing (make qemu's 10.2.2 is not)."""
    from txnstorm.vm.caps import from_schema

    aio = {"name": "125", "meta-type": "enum", "members": [{"name": "threads"}, {"name": "native"}]}
    without = from_schema("10.2.2", [aio])
    assert without.missing(aio=("native", "io_uring")) == ["aio=io_uring (built without it)"]
    with_uring = from_schema("7.2.22", [{**aio, "members": [*aio["members"], {"name": "io_uring"}]}])
    assert with_uring.missing(aio=("io_uring",)) == []


def test_side_by_side_table_has_a_column_per_qemu():
    from txnstorm.runner.runs import side_by_side

    table = {"tests/k.py:K.test_y": {"7.2.22": {"WARN": 2}, "10.0.13": {"PASS": 2}}}
    text = side_by_side(table, ["7.2.22", "10.0.13"])
    header, row = text.splitlines()
    assert "QEMU 7.2.22" in header and "QEMU 10.0.13" in header
    assert row.index("WARN 2") < row.index("PASS 2")


def job(tmp_path, status, fail_reason=None, **board):
    test = {"name": "tests/x.py:X.test", "status": status, "fail_reason": fail_reason, "whiteboard": json.dumps(board)}
    (tmp_path / "results.json").write_text(json.dumps({"tests": [test]}))
    return tmp_path


def known(label, issue, matched, reproduced):
    return {"label": label, "issue": issue, "matched": matched, "reproduced": reproduced}


@pytest.mark.parametrize(
    ("status", "board", "issues", "answer"),
    [
        ("PASS", {}, (), 0),
        ("FAIL", {"failure": {"kind": "QEMU crashed"}}, (), 1),  # crash, hang, stall, oracle
        ("ERROR", {}, (), 125),  # the suite's own fault
        ("CANCEL", {}, (), 125),  # QEMU lacks a feature
        ("INTERRUPTED", {}, (), 125),
        ("WARN", {"known_issue": known("still reproduces", "KI-5", "KI-5", True)}, (), 1),
        ("WARN", {"known_issue": known("KI-3 while KI-2", "KI-2", "KI-3", True)}, (), 125),
        ("WARN", {"known_issue": known("KI-3 while KI-2", "KI-2", "KI-3", True)}, ("KI-2", "KI-3"), 1),
        ("WARN", {"known_issue": known("KI-5", "KI-5", "KI-5", True)}, ("KI-1",), 125),
        ("WARN", {"known_issue": known("not seen this run", "KI-2", None, False)}, (), 0),
        ("WARN", {"failure": {"kind": "device stalled", "known_issue": "KI-7"}}, (), 1),  # any test meeting a KI
        ("WARN", {"failure": {"kind": "device stalled", "known_issue": "KI-7"}}, ("KI-5",), 125),
    ],
)  # fmt: skip
def test_bisect_answers(tmp_path, status, board, issues, answer):
    assert runs.bisect_answer(job(tmp_path, status, "why", **board), issues).exit_status == answer


def test_bisect_without_a_result_skips(tmp_path):
    assert runs.bisect_answer(tmp_path).exit_status == 125


def test_the_nightly_ends_within_its_budget():
    now = [0.0]

    def clock():
        return now[0]

    jobs = []
    for job_ in runs.budgeted_jobs(1000, 2, clock):
        assert job_.timeout_s <= 1000 - now[0], "a job may not run past the budget"
        jobs.append(job_)
        now[0] += min(job_.timeout_s, 300)  # each job takes 300 s, or is cut by its timeout
    assert now[0] <= 1000
    assert [(j.iteration, j.index) for j in jobs] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert jobs[-1].timeout_s == 100


def test_a_runner_job_names_its_qemu_and_drops_qemus_own_names(tmp_path, monkeypatch):
    """Nightly and teeth run jobs one way: QEMU_TEST_* left in the environment would disagree with the
    QEMU the job is for (sut.resolve refuses that), so every test would ERROR."""
    seen = {}

    class FakeJob:
        stdout = [" (1/2) tests/a.py:A.test_x: STARTED\n", " (1/2) tests/a.py:A.test_x:  PASS (12.50 s)\n"]

        def __init__(self, cmd, **kw):
            seen.update(cmd=cmd, **kw)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    heard = []
    monkeypatch.setenv("QEMU_TEST_QEMU_BINARY", "/usr/bin/qemu-system-x86_64")
    monkeypatch.setattr(runs.subprocess, "Popen", FakeJob)
    latest = runs.run_avocado_job(tmp_path / "q", tmp_path / "i", ["quick"], tmp_path / "r", 90, on_test=heard.append)
    assert heard == [runs.TestLine(1, 2, "tests/a.py:A.test_x", "PASS", 12.5)]
    assert latest == tmp_path / "r" / "latest"
    assert seen["env"]["QEMU"] == str(tmp_path / "q") and "QEMU_TEST_QEMU_BINARY" not in seen["env"]
    assert seen["cmd"][seen["cmd"].index("--job-timeout") :][:2] == ["--job-timeout", "90"]
    assert "--filter-by-tags=quick" in seen["cmd"] and "tests/transaction_rollback.py" in seen["cmd"]


def test_a_replay_runs_on_the_qemu_img_and_accel_that_failed():
    board = {"seed": 7, "qemu_path": "/home/me/qemu/build/qemu-system-x86_64", "accel": "kvm",
             "qemu_img_path": "/opt/other/qemu-img"}  # fmt: skip
    test = {"id": "4-tests/a.py:A.test_x", "whiteboard": json.dumps(board)}
    assert runs.replay_command(test) == (
        "make run TEST=tests/a.py:A.test_x SEED=7 QEMU=/home/me/qemu/build/qemu-system-x86_64 "
        "QEMU_IMG=/opt/other/qemu-img ACCEL=kvm"
    )
    board["qemu_img_path"] = "/home/me/qemu/build/qemu-img"  # beside QEMU: found again without saying it
    assert "QEMU_IMG" not in runs.replay_command({"id": "tests/a.py:A.test_x", "whiteboard": json.dumps(board)})


SCENARIOS = ["tests/a.py:Alpha.test_one", "tests/a.py:Alpha.test_two", "tests/b.py:Beta.test_multiqueue"]


def test_a_test_is_named_by_its_id_or_a_piece_of_it():
    assert runs.pick_tests(SCENARIOS, ["tests/a.py:Alpha.test_one"]) == ["tests/a.py:Alpha.test_one"]
    assert runs.pick_tests(SCENARIOS, ["multiqueue", "alpha"]) == [SCENARIOS[2], SCENARIOS[0], SCENARIOS[1]]
    with pytest.raises(UserError, match="TEST='nosuch' names no test; scripts/txnstorm list"):
        runs.pick_tests(SCENARIOS, ["nosuch"])
    with pytest.raises(UserError, match="names 1 test\\(s\\) outside TAGS .*make run TEST="):
        runs.pick_tests(SCENARIOS[:2], ["multiqueue"], SCENARIOS)


@pytest.mark.parametrize(("statuses", "status"), [
    ({"PASS": 3, "WARN": 1, "CANCEL": 2}, 0), ({"PASS": 3, "FAIL": 1, "ERROR": 1}, 1), ({"PASS": 1, "ERROR": 1}, 3),
    ({"INTERRUPTED": 1}, 3), ({}, 3),
])  # fmt: skip
def test_a_runs_exit_status_says_what_it_means(statuses, status):
    assert runs.job_exit_status(statuses) == status


def test_duration_zero_says_it_is_no_time():
    with pytest.raises(UserError, match="DURATION='0' is no time at all"):
        parse_duration("0")


def test_every_scenario_test_is_listed_with_its_tags():
    found = dict(runs.scenario_tags(sorted((runs.REPO / "tests").glob("*.py"))))
    assert "quick" in found["tests/transaction_matrix.py:TransactionMatrix.test_two_disks_one_iothread"]
    assert set(found) == set(runs.avocado_list(
        Path(sys.executable).parent / "avocado", [], runs.scenario_refs(), runs.REPO
    ))  # fmt: skip


def test_the_tests_that_catch_soonest_run_first_in_every_shard():
    every_test = [ref for ref, _tags in runs.scenario_tags(sorted((runs.REPO / "tests").glob("*.py")))]
    assert all(ref in every_test for ref in runs.CATCHES_FIRST), "a renamed test"
    everything = sorted(every_test)
    whole = shard(everything, 1, 1)
    assert whole[: len(runs.CATCHES_FIRST)] == list(runs.CATCHES_FIRST)
    for i in (1, 2):
        part = shard(everything, i, 2)
        first = [t for t in runs.CATCHES_FIRST if t in part]
        assert part[: len(first)] == first and sorted(part) == sorted(everything)[i - 1 :: 2]


def test_jobs_default_from_cores_and_bad_values():
    from txnstorm.errors import UserError

    assert [runs.jobs_for(c) for c in (0, 1, 2, 4, 16)] == [1, 1, 2, 4, 16]
    assert runs.parse_jobs("auto") is None and runs.parse_jobs("") is None and runs.parse_jobs("3") == 3
    for bad in ("0", "-1", "two"):
        with pytest.raises(UserError, match=f"JOBS={bad} is not a positive number"):
            runs.parse_jobs(bad)


def test_a_test_reference_names_that_test_alone():
    """Avocado searches what follows the colon as a regular expression: `...with_scsi` also named
    `...with_scsi_vq_mapping`, which a make run then ran twice (and `make run TEST=` would too)."""
    ref = "tests/transaction_matrix.py:TransactionMatrixControls.test_separate_commands_are_caught_with_scsi"
    assert runs.exact(ref) == ref.replace(":", ":^").replace(".test", r"\.test") + "$"
    assert runs.exact("tests/nbd_transaction.py") == "tests/nbd_transaction.py", "a file stays a file"
    avocado = Path(sys.executable).parent / "avocado"
    listed = runs.avocado_list(avocado, [], [runs.exact(ref)], cwd=runs.REPO)
    assert listed == [ref], listed
    assert len(runs.avocado_list(avocado, [], [ref], cwd=runs.REPO)) == 2, "the unanchored one: the negative control"
