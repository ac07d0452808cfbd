"""``make coverage``'s map and ``make mutants``'s verdicts from made-up gcovr data and job results:
no QEMU, no gcov."""

from __future__ import annotations

import json
import time
from pathlib import Path

from txnstorm.runner import coverage, csource, mutants, mutants_run

GCOVR = {
    "files": [{
        "file": "block/io.c",
        "lines": [{"line_number": 3, "count": 5, "branches": [{"count": 1}, {"count": 0}],
                   "function_name": "bdrv_drained_begin"},
                  {"line_number": 4, "count": 0, "branches": [], "function_name": "bdrv_drained_begin"},
                  {"line_number": 9, "count": 2, "branches": [], "function_name": "inlined"}],
        "functions": [{"name": "bdrv_drained_begin", "lineno": 2, "execution_count": 5},
                      {"name": "bdrv_drain_all_begin", "lineno": 8, "execution_count": 0},
                      {"name": "inlined", "lineno": 9, "execution_count": 0}],
    }],
}  # fmt: skip
PART = {"block/io.c": {"bdrv_drained_begin": "a drain primitive", "bdrv_drain_all_begin": "a drain primitive"},
        "nbd/server.c": {"nbd_drained_begin": ".drained_begin of nbd_block_ops"}}  # fmt: skip


def test_the_summary_counts_lines_branches_functions_and_the_headline() -> None:
    s = coverage.summarize(GCOVR, ["block/io.c", "nbd/server.c"], PART, "quick")
    io = s["files"]["block/io.c"]
    assert io["lines"] == [2, 3] and io["branches"] == [1, 2] and io["functions"] == [2, 3]
    assert io["calls"]["inlined"] == 2  # its entry counter 0 (inlined before GCC instrumented it), its lines ran
    assert s["reached"]["block/io.c"] == ["bdrv_drained_begin"]
    assert s["never"]["block/io.c"] == {"bdrv_drain_all_begin": "a drain primitive"}
    assert s["not_built"] == ["nbd/server.c"]  # no counters at all: not compiled here, left out
    assert coverage.headline(s) == (1, 2)  # of the taking-part functions of the files built
    text = coverage.table(s)
    assert "quick: reaches 1 of the 2 functions" in text and "  block/io.c: bdrv_drain_all_begin (" in text
    assert "not built in this configuration (left out): nbd/server.c" in text


def test_absolute_paths_in_gcovr_data_match_the_relative_file() -> None:
    data = {"files": [{**GCOVR["files"][0], "file": "/cache/coverage/work/src/block/io.c"}]}
    assert coverage.summarize(data, ["block/io.c"], PART, "q")["files"]["block/io.c"]["lines"] == [2, 3]


def test_the_union_says_what_each_reaches_alone() -> None:
    quick = coverage.summarize(GCOVR, ["block/io.c", "nbd/server.c"], PART, "quick")
    other = {"name": "iotests", "reached": {"block/io.c": ["bdrv_drain_all_begin"], "nbd/server.c": []},
             "never": {"block/io.c": {"bdrv_drained_begin": ""},
                       "nbd/server.c": {"nbd_drained_begin": ""}}}  # fmt: skip
    text = coverage.union(quick, other)
    assert text.splitlines()[0] == "quick: 1, iotests: 1, union: 2, neither: 1 of 3 functions taking part"
    assert "only quick (1):\n  block/io.c: bdrv_drained_begin" in text
    assert "neither (1):\n  nbd/server.c: nbd_drained_begin" in text


def test_counter_files_are_named_as_meson_names_objects() -> None:
    assert coverage.object_name("block/export/export.c") == "block_export_export.c.gcda"
    assert coverage.results_name(["quick"]) == "quick" and coverage.results_name([]) == "all"


SNIPPET = "void bdrv_drained_begin(void)\n{\n    aio_notify(ctx);\n}\nvoid bdrv_drain_all_begin(void)\n{\n" \
          "    aio_notify(ctx);\n}\nstatic const BlockDevOps o = {\n    .drained_begin = f,\n};\n"  # fmt: skip


def test_a_mutant_in_a_function_the_coverage_run_never_ran_is_not_run(tmp_path: Path) -> None:
    found = [mutants.Mutant("block/io.c", s) for s in csource.sites(SNIPPET)]
    (tmp_path / "c.json").write_text(json.dumps(GCOVR))
    counts = mutants_run.function_counts(tmp_path / "c.json")
    assert [(m.site.line, m.site.function) for m in found] == [(3, "bdrv_drained_begin"), (7, "bdrv_drain_all_begin"),
                                                               (10, "o")]  # fmt: skip
    assert [mutants_run.never_reached(m, counts) for m in found] == [False, True, False]  # a hook line always runs
    caller = mutants.Mutant("block/io.c", csource.Site("prepare", "bdrv_drain_all_begin()", 3, (0, 1), "inlined"))
    assert mutants_run.never_reached(caller, counts)  # its function ran, the function it calls never did
    assert mutants_run.function_counts(tmp_path / "none.json") is None
    assert not mutants_run.never_reached(found[1], None)


def test_a_mutant_is_killed_by_the_first_test_that_fails(tmp_path: Path) -> None:
    mutant = mutants.Mutant("block/io.c", csource.sites(SNIPPET)[0])
    tests = [{"name": "tests/a.py:A.test_one", "status": "PASS", "actual_time_start": 100.0, "actual_time_end": 130.0},
             {"name": "tests/b.py:B.test_two", "status": "FAIL",
              "fail_reason": "QEMU hung at 'round 1' (/work/r/job-1/scratch/d.qcow2)\nmore",
              "actual_time_start": 101.0, "actual_time_end": 141.5}]  # fmt: skip
    (tmp_path / "results.json").write_text(json.dumps({"tests": tests}))
    outcome = mutants_run.judge(mutant, tmp_path, 40.0, 60.0)
    assert outcome.status == "killed" and outcome.first_kill_s == 41.5
    assert outcome.detail == "B.test_two: FAIL QEMU hung at 'round 1' (d.qcow2)"
    (tmp_path / "results.json").write_text(json.dumps({"tests": tests[:1]}))
    assert mutants_run.judge(mutant, tmp_path, 1, 1).status == "survived"
    hung = [{**tests[0], "status": "INTERRUPTED", "fail_reason": "Test interrupted: Timeout reached"}]
    (tmp_path / "results.json").write_text(json.dumps({"tests": hung}))
    outcome = mutants_run.judge(mutant, tmp_path, 1, 1)
    assert (outcome.status, outcome.first_kill_s) == ("killed", 30.0)  # Avocado's timeout: a QEMU that hung
    assert mutants_run.judge(mutant, None, 1, 1).status == "no result"


def test_a_warn_where_the_unmutated_build_passed_kills_and_a_stock_failure_never_does(tmp_path: Path) -> None:
    """blockdev.c:1878 made every qemu-img create abort with KI-5's signature: 15 tests WARNed
    "outside what was measured" and the mutant survived.  Judged against the unmutated tier: killed."""
    mutant = mutants.Mutant("block/io.c", csource.sites(SNIPPET)[0])
    stock = {"tests/k.py:K.test_ki5": "WARN", "tests/r.py:R.test_rollback": "PASS", "tests/f.py:F.test_flaky": "FAIL"}
    ki5 = "known issue KI-5, still reproduces on QEMU 10.2.2"
    tests = [{"name": "tests/k.py:K.test_ki5", "status": "WARN", "fail_reason": ki5,
              "actual_time_start": 100.0, "actual_time_end": 105.0},
             {"name": "tests/f.py:F.test_flaky", "status": "FAIL", "fail_reason": "as on stock",
              "actual_time_start": 100.0, "actual_time_end": 107.0},
             {"name": "tests/r.py:R.test_rollback", "status": "WARN", "fail_reason": f"{ki5}, outside",
              "actual_time_start": 101.0, "actual_time_end": 110.0}]  # fmt: skip
    (tmp_path / "results.json").write_text(json.dumps({"tests": tests}))
    outcome = mutants_run.judge(mutant, tmp_path, 1, 1, stock)
    assert (outcome.status, outcome.first_kill_s) == ("killed", 10.0)
    assert outcome.detail.startswith("R.test_rollback: WARN known issue KI-5")
    as_on_stock = {**stock, "tests/r.py:R.test_rollback": "WARN"}
    assert mutants_run.judge(mutant, tmp_path, 1, 1, as_on_stock).status == "survived"
    assert mutants_run.worse_than_stock({"name": "x", "status": "ERROR"}, None)  # no baseline: as before


def test_the_score_counts_unreached_as_survivors_and_leaves_out_build_failures() -> None:
    def o(status: str, n: int) -> mutants_run.Outcome:
        return mutants_run.Outcome(f"block/io.c:{n}:call:aio_notify", "delete aio_notify()", "f", status)

    outcomes = [o("killed", 1), o("survived", 2), o("not reached", 3), o("build failed", 4)]
    assert mutants_run.score(outcomes) == (1, 3)
    text = mutants_run.table(outcomes, "quick")
    assert "mutation score 1/3 (33 %)" in text
    assert "  block/io.c:2  delete aio_notify()  in f  (survived)" in text


def test_an_equivalent_mutant_is_said_with_its_reason_and_not_counted() -> None:
    eq = mutants_run.Outcome("hw/block/virtio-blk.c:1675:call:blk_drain", "delete blk_drain()", "f", "equivalent",
                             "the next call drains the same requests")  # fmt: skip
    killed = mutants_run.Outcome("block/io.c:1:call:aio_notify", "delete aio_notify()", "f", "killed")
    assert mutants_run.score([eq, killed]) == (1, 1)
    text = mutants_run.table([eq, killed], "quick")
    assert "mutation score 1/1 (100 %)" in text and "1 equivalent" in text
    assert "equivalent: hw/block/virtio-blk.c:1675:call:blk_drain: the next call drains the same requests" in text
    assert "survivors" not in text


def test_an_equivalence_whose_mutant_the_source_no_longer_has_is_stale() -> None:
    site = csource.Site("call", "blk_drain()", 1675, (0, 1), "virtio_blk_stop_ioeventfd")
    here = mutants.Mutant("hw/block/virtio-blk.c", site)
    assert here.id in mutants.EQUIVALENT
    assert mutants.stale_equivalents([here]) == [e for e in mutants.EQUIVALENT if e != here.id]
    moved = mutants.Mutant("hw/block/virtio-blk.c", csource.Site("call", "blk_drain()", 1680, (0, 1), "f"))
    assert here.id in mutants.stale_equivalents([moved])


def test_the_shards_sum_to_one_table_with_each_mutants_newest_result(tmp_path: Path) -> None:
    import json
    import os

    def shard(name: str, mtime: float, *outcomes: mutants_run.Outcome) -> None:
        (tmp_path / name).mkdir()
        path = tmp_path / name / "mutants.json"
        path.write_text(json.dumps([vars(o) for o in outcomes]))
        os.utime(path, (mtime, mtime))

    def o(mutant_id: str, status: str) -> mutants_run.Outcome:
        return mutants_run.Outcome(mutant_id, "delete x()", "f", status)

    shard("quick-shard1of26", 100, o("blockdev.c:1842:step:clean", "killed"), o("block.c:3081:step:abort", "survived"))
    shard("quick-shard2of26", 100, o("block/io.c:75:hook-call:drained_end", "killed"))
    shard("quick-shard1of1", 200, o("block.c:3081:step:abort", "killed"))  # a picked run, later
    shard("iotests-shard1of26", 300, o("block.c:3081:step:abort", "survived"))  # another judge: not summed
    outcomes, read = mutants_run.summed(tmp_path, "quick")
    assert [(x.id, x.status) for x in outcomes] == [("block/io.c:75:hook-call:drained_end", "killed"),
                                                    ("blockdev.c:1842:step:clean", "killed"),
                                                    ("block.c:3081:step:abort", "killed")]  # fmt: skip
    assert read == ["quick-shard1of1", "quick-shard1of26", "quick-shard2of26"]
    assert mutants_run.summed(tmp_path, "none") == ([], [])


def test_a_mutant_file_is_written_as_a_new_file_never_through_a_hard_link(tmp_path: Path) -> None:
    original = tmp_path / "orig.c"
    original.write_text("int x;\n")
    linked = tmp_path / "linked.c"
    linked.hardlink_to(original)
    mutants_run.write_file(linked, "int y;\n")
    assert original.read_text() == "int x;\n" and linked.read_text() == "int y;\n"


def test_an_iotest_that_is_not_in_the_tree_is_one_line(tmp_path: Path) -> None:
    import pytest

    from txnstorm.errors import UserError

    (tmp_path / "tests" / "qemu-iotests" / "tests").mkdir(parents=True)
    (tmp_path / "tests" / "qemu-iotests" / "055").write_text("")
    (tmp_path / "tests" / "qemu-iotests" / "tests" / "qsd-jobs").write_text("")
    coverage.check_iotests(tmp_path, ["055", "qsd-jobs"])
    with pytest.raises(UserError, match="no such iotest .*: 999"):
        coverage.check_iotests(tmp_path, ["055", "999"])


# ------------------------------------------------------------------ make mutants MUTANTS_PEER=iotests

TAP = """TAP version 13
# QEMU          -- "/b/qemu-system-x86_64" -nodefaults
1..1
ok qcow2 055
not ok qcow2 185
--- /src/tests/qemu-iotests/185.out
+++ 185.out.bad
@@ -10 +10 @@
-{"offset": 65536}
+{"offset": 131072}
ok qcow2 qsd-jobs # SKIP
"""


def test_check_s_tap_lines_say_each_iotest_s_verdict() -> None:
    assert [mutants_run.tap_status(TAP, t) for t in ("055", "185", "qsd-jobs", "999")] == [
        "pass", "fail", "not run", "fail"]  # no line: check itself failed  # fmt: skip
    assert mutants_run.first_difference(TAP) == '+{"offset": 131072}'
    assert mutants_run.first_difference("not ok qcow2 1\n--- a\n+++ b\n-gone\n") == "-gone"
    assert mutants_run.first_difference("") == "no output"


def test_the_iotests_that_fail_on_the_unmutated_build_are_left_out_and_the_rest_run_quickest_first() -> None:
    baseline = [mutants_run.IotestResult("055", "pass", 30.0), mutants_run.IotestResult("185", "fail", 9.0, "-x"),
                mutants_run.IotestResult("141", "pass", 5.0),
                mutants_run.IotestResult("iothreads-create", "timeout", 1800.0),
                mutants_run.IotestResult("qsd-jobs", "not run", 0.1)]  # fmt: skip
    passing, left_out = mutants_run.baseline_split(baseline)
    assert [r.test for r in passing] == ["141", "055"]
    assert [r.test for r in left_out] == ["185", "iothreads-create", "qsd-jobs"]
    line = mutants_run.excluded_line(left_out)
    assert line.startswith("iotests left out (not passing on the unmutated build): 185 fail -x; iothreads-create")
    assert "none left out" in mutants_run.excluded_line([])
    assert mutants_run.iotest_timeout(5.0) == 120.0 and mutants_run.iotest_timeout(60.0) == 300.0


def test_a_mutant_is_killed_by_the_first_iotest_that_fails_or_hangs() -> None:
    mutant = mutants.Mutant("block/io.c", csource.sites(SNIPPET)[0])
    ran = [mutants_run.IotestResult("141", "pass", 5.0), mutants_run.IotestResult("055", "timeout", 150.0, "ended")]
    outcome = mutants_run.judge_iotests(mutant, ran, 12.0)
    assert (outcome.status, outcome.first_kill_s, outcome.tier_s) == ("killed", 155.0, 155.0)
    assert outcome.detail == "055: timeout ended"
    survived = mutants_run.judge_iotests(mutant, ran[:1], 12.0)
    assert (survived.status, survived.detail) == ("survived", "1 of 1 iotests passed")
    assert mutants_run.judge_iotests(mutant, [], 1.0).status == "no result"
    text = mutants_run.table([outcome, survived], "iotests", ["iotests left out ...: 185 fail"])
    assert "iotests: mutation score 1/2 (50 %)" in text and "iotests left out ...: 185 fail" in text


def test_an_iotest_is_a_check_of_its_own_and_one_that_hangs_is_ended_with_its_children(tmp_path: Path) -> None:
    check = tmp_path / "check"
    check.write_text("#!/bin/sh\n"  # check -qcow2 -tap TEST
                     'case "$3" in\n'
                     "  good) echo 'ok qcow2 good';;\n"
                     "  bad) echo 'not ok qcow2 bad'; echo '+wrong'; exit 1;;\n"
                     f"  hang) (trap '' TERM; sleep 300) & echo $! > {tmp_path}/child; wait;;\n"
                     "esac\n")  # fmt: skip
    check.chmod(0o755)
    log = tmp_path / "iotests.log"
    assert mutants_run.run_iotest(check, "good", 30, log).status == "pass"
    bad = mutants_run.run_iotest(check, "bad", 30, log)
    assert (bad.status, bad.reason) == ("fail", "+wrong")
    hung = mutants_run.run_iotest(check, "hang", 3, log)
    assert hung.status == "timeout" and hung.reason == "no verdict within 3 s (ended)"
    child = int((tmp_path / "child").read_text())  # it ignores SIGTERM, as a QEMU hung in a drain does

    def alive() -> bool:
        try:
            return Path(f"/proc/{child}/stat").read_text().split()[2] != "Z"
        except OSError:
            return False

    deadline = time.monotonic() + 5  # SIGKILLed with its group; init reaps it
    while alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive()
    base = [mutants_run.IotestResult(t, "pass", 0.1) for t in ("good", "bad", "good")]
    ran = mutants_run.run_iotests_until_one_fails(check, base, log)
    assert [r.test for r in ran] == ["good", "bad"] and ran[-1].reason == "failed twice: +wrong"
    assert log.read_text().count("=== bad: fail") == 3  # once above, twice here


def test_an_iotest_that_fails_once_and_then_passes_is_no_kill(tmp_path: Path) -> None:
    """iothreads-create's 5 s event wait timed out under load on two mutants whose build it passes."""
    check = tmp_path / "check"
    check.write_text("#!/bin/sh\n"
                     f"if [ ! -e {tmp_path}/once ]; then touch {tmp_path}/once; echo 'not ok qcow2 $3'; "
                     "echo '+Traceback'; exit 1; fi\n"
                     "echo \"ok qcow2 $3\"\n")  # fmt: skip
    check.chmod(0o755)
    base = [mutants_run.IotestResult(t, "pass", 0.1) for t in ("iothreads-create", "055")]
    ran = mutants_run.run_iotests_until_one_fails(check, base, tmp_path / "log")
    assert [(r.test, r.status) for r in ran] == [("iothreads-create", "pass"), ("055", "pass")]
    assert ran[0].reason == "failed once (+Traceback), then passed: not a kill"
    assert mutants_run.judge_iotests(mutants.Mutant("block.c", csource.sites(SNIPPET)[0]), ran, 1).status == "survived"


def test_mutants_peer_is_suite_or_iotests() -> None:
    import pytest

    from txnstorm.errors import UserError
    from txnstorm.runner import inputs

    inputs.check_mutants_peer("MUTANTS_PEER", "iotests")
    with pytest.raises(UserError, match="MUTANTS_PEER=iotest is not one of suite, iotests"):
        inputs.check_mutants_peer("MUTANTS_PEER", "iotest")
