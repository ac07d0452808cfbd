import json
from pathlib import Path

import pytest

from txnstorm.errors import UserError
from txnstorm.oracles import known_issues as ki
from txnstorm.oracles.known_scope import parse_version

KI1_LINE = (
    "qemu-system-x86_64: ../../blockdev-nbd.c:62: nbd_blockdev_client_closed: "
    "Assertion `qemu_in_main_thread() && nbd_server' failed."
)
KI1_REPORT = f"QEMU killed by SIGABRT: {KI1_LINE}"


REPRODUCER = "tests/nbd_known_issues.py:NbdClientDisconnectIothread.test_disconnect"


def entry(**overrides: object) -> dict:
    base = {
        "id": "KI-1",
        "title": "client disconnect aborts",
        "measured": [{"qemu": "7.2.0", "result": "affected", "how": "5 of 5"},
                     {"qemu": "9.0.0", "result": "absent", "how": "0 of 5"}],  # fmt: skip
        "shapes": [REPRODUCER],
        "upstream": {"status": "fixed", "commit": "7c1f51bf38", "subject": "nbd: fix it", "release": "8.0.0"},
        "signature": "nbd_blockdev_client_closed: Assertion `qemu_in_main_thread() && nbd_server' failed",
        "reproducer": REPRODUCER,
        "rate": {"hits": 5, "tries": 5, "per": "attempt"},
        "seen": "5 of 5 on 7.2.22",
    }
    base.update(overrides)
    return base


def issues_of(*entries: dict) -> list[ki.KnownIssue]:
    return ki.parse(json.dumps(list(entries)))


def test_the_repository_list_is_valid_and_names_its_reproducers():
    issues = ki.load()
    assert issues, "known-issues.json lists nothing"
    repo = Path(ki.DEFAULT_PATH).parent
    for issue in issues:
        path, _, test = issue.reproducer.partition(":")
        assert (repo / path).is_file(), f"{issue.id}: no reproducer file {path}"
        assert test.split(".")[0] in (repo / path).read_text(), f"{issue.id}: {test} not in {path}"


def test_affects_follows_what_was_measured_and_the_upstream_fix():
    (issue,) = issues_of(entry())
    assert ki.affects(issue, "7.2.0") and ki.affects(issue, (7, 2))  # short tuples are padded with zeros
    assert ki.affects(issue, "7.2.22"), "not measured: 7.2.0, the nearest measured below, had it"
    assert ki.affects(issue, "6.0.0"), "below every measured version: the oldest measured decides"
    assert not ki.affects(issue, "8.0.0"), "the fix's release"
    assert not ki.affects(issue, "9.0.0"), "measured absent"
    assert issue.affects.describe() == "7.2.0 affected; 9.0.0 absent; fixed in 8.0 by 7c1f51bf38"


def test_parse_version_takes_qemu_dev_versions():
    assert parse_version("7.2.22") == (7, 2, 22)
    assert parse_version("8.2.90 (v9.0.0-rc0)") == (8, 2, 90)
    with pytest.raises(ValueError):
        parse_version("")


def test_match_crash_finds_the_signature_in_a_report_or_stderr():
    issues = issues_of(entry(), entry(id="KI-2", signature="nbd_co_receive_request: Assertion"))
    assert ki.match_crash(KI1_REPORT, issues).id == "KI-1"
    assert ki.match_crash("warning: x\n" + KI1_LINE + "\nAborted\n", issues).id == "KI-1"
    assert ki.match_crash("QEMU killed by SIGSEGV: (no stderr)", issues) is None


def test_match_crash_prefers_the_most_specific_signature():
    issues = issues_of(
        entry(id="KI-1", signature="Assertion"), entry(id="KI-2", signature="nbd_blockdev_client_closed")
    )
    assert ki.match_crash(KI1_REPORT, issues).id == "KI-2"


def test_judge_still_reproduces_is_warn():
    issues = issues_of(entry())
    verdict = ki.judge(issues[0], "7.2.0", KI1_REPORT, issues)
    assert (verdict.status, verdict.label) == ("WARN", "known issue KI-1, still reproduces on QEMU 7.2.0")
    assert verdict.as_dict()["matched"] == "KI-1" and verdict.reproduced


def test_judge_no_crash_of_a_certain_reproducer_is_pass():
    issues = issues_of(entry())
    verdict = ki.judge(issues[0], (7, 2, 0), None, issues, tries=2)
    assert verdict.status == "PASS"
    assert verdict.label == (
        "known issue KI-1, no longer reproduces on QEMU 7.2.0: did not reproduce in 2 attempts "
        "(listed rate 5/5 per attempt: chance of a miss 0 %)"
    )
    assert not verdict.reproduced
    assert ki.judge(issues[0], "9.0.0", None, issues).status == "PASS"


def test_a_race_that_did_not_fire_is_not_seen_not_fixed():
    """The KI-2 race crashed 44 of 53 boots: one quiet boot leaves a 17 % chance it is still there."""
    race = entry(id="KI-2", rate={"hits": 44, "tries": 53, "per": "boot"})
    (issue,) = issues_of(race)
    verdict = ki.judge(issue, "7.2.0", None, [issue], tries=1)
    assert verdict.status == "WARN", verdict.label
    assert verdict.label == (
        "known issue KI-2, not seen this run on QEMU 7.2.0: did not reproduce in 1 boot "
        "(listed rate 44/53 per boot: chance of a miss 17 %); not judged fixed"
    )
    assert not verdict.reproduced and verdict.as_dict()["miss_chance"] == pytest.approx(9 / 53)
    # Three quiet boots: 0.5 % -- small enough to call it gone.
    assert ki.judge(issue, "7.2.0", None, [issue], tries=3).status == "PASS"


@pytest.mark.parametrize(
    "rate",
    [None, {"hits": 0, "tries": 5, "per": "boot"}, {"hits": 6, "tries": 5, "per": "boot"},
     {"hits": 1, "tries": 5}, {"hits": "1", "tries": 5, "per": "boot"}, {"hits": 1, "tries": 5, "per": " "}],
)  # fmt: skip
def test_a_rate_must_be_hits_per_try(rate):
    with pytest.raises(UserError, match="rate must be"):
        issues_of(entry(rate=rate))


def test_judge_crash_where_the_issue_was_measured_gone_is_a_regression():
    issues = issues_of(entry())
    verdict = ki.judge(issues[0], "9.0.0", KI1_REPORT, issues)
    assert verdict.status == "FAIL" and verdict.scope == "regression"
    assert verdict.label == (f"regression of KI-1 (fixed in 8.0 by 7c1f51bf38; not seen on 9.0.0 before: 0 of 5): "
                             f"{KI1_REPORT}")  # fmt: skip


def test_judge_unknown_crash_is_a_new_failure():
    issues = issues_of(entry())
    verdict = ki.judge(issues[0], "7.2.22", "QEMU killed by SIGSEGV: Formatting 'x.qcow2'", issues)
    assert verdict.status == "FAIL"
    assert "no known signature" in verdict.label and "SIGSEGV" in verdict.label


def test_judge_names_another_listed_issue_that_struck_first():
    issues = issues_of(entry(id="KI-2", signature="nbd_co_receive_request"), entry(id="KI-3"))
    verdict = ki.judge(issues[0], "7.2.0", KI1_REPORT, issues)  # KI-3's one shape is KI-2's reproducer too
    assert verdict.status == "WARN"
    assert verdict.label == "known issue KI-3, still reproduces on QEMU 7.2.0 (while reproducing KI-2)"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("{", "not valid JSON"),
        ('{"id": "KI-1"}', "top level must be a list"),
        (json.dumps([entry(id="bug-1")]), "must look like 'KI-1'"),
        (json.dumps([{k: v for k, v in entry().items() if k != "signature"}]), "missing field(s) signature"),
        (json.dumps([entry(colour="red")]), "unknown field(s) colour"),
        (json.dumps([entry(signature="")]), "signature must be a non-empty string"),
        (json.dumps([entry(affects={"min": "7.2.22", "max_exclusive": "unknown"})]), "affects (a version range) is"),
        (json.dumps([entry(measured=[])]), "measured must be a non-empty list"),
        (json.dumps([entry(measured=[{"qemu": "7.2", "result": "affected", "how": "x"}])]), "qemu must be a version"),
        (json.dumps([entry(measured=[{"qemu": "7.2.0", "result": "broken", "how": "x"}])]), "result must be one of"),
        (json.dumps([entry(measured=[{"qemu": "7.2.0", "result": "absent", "how": "x"}])]), "no version where it"),
        (json.dumps([entry(measured=[{"qemu": "7.2.0", "result": "affected", "how": "x"}] * 2)]), "listed twice"),
        (json.dumps([entry(shapes=["tests/other.py:Other.test_x"])]), "shapes must name the reproducer"),
        (json.dumps([entry(shapes="tests/x.py")]), "shapes must be a non-empty list"),
        (json.dumps([entry(upstream={"status": "fixed", "release": "8.0.0"})]), "a fix needs its commit"),
        (json.dumps([entry(upstream={"status": "fixed", "commit": "abcdef1", "subject": "s", "release": "8.1"})]),
         "release must be a version"),
        (json.dumps([entry(upstream={"status": "not fixed", "release": "8.0.0"})]), "has no commit, release"),
        (json.dumps([entry(upstream={"status": "maybe"})]), "upstream must be an object whose status"),
        (json.dumps([entry(), entry()]), "duplicate id(s) KI-1"),
        (json.dumps(["KI-1"]), "entry 0: an entry must be an object"),
        (json.dumps([entry(kind="hang", signature="main thread in (bdrv_")]), "must be a regular expression"),
    ],
)
def test_a_bad_file_is_one_clear_error(tmp_path, text, complaint):
    path = tmp_path / "known-issues.json"
    path.write_text(text)
    with pytest.raises(ki.KnownIssuesError) as info:
        ki.load(path)
    assert complaint in str(info.value)
    assert str(path) in str(info.value)
    assert isinstance(info.value, UserError)


KI11_SIGNATURE = (
    "^(QEMU hung|device stalled): .*qemu-storage-daemon main thread in bdrv_(drain_all_begin|do_drained_begin) "
)


def test_a_hang_is_matched_by_where_the_main_thread_waits():
    """A hang's signature is a regular expression over the reason, which names the hung program's
    main thread's innermost frames (``Machine.keep_backtrace``)."""
    (issue,) = issues_of(entry(
        id="KI-11", kind="hang", signature=KI11_SIGNATURE, upstream={"status": "not fixed"},
        measured=[{"qemu": "7.2.22", "result": "absent", "how": "0 in 660"},
                  {"qemu": "10.0.13", "result": "affected", "how": "3 hangs"}],
    ))  # fmt: skip
    reason = (
        "QEMU hung: QMP transaction: no answer within 60 s (QEMU main thread in its main loop (idle); backtrace: "
        "qemu-backtrace.txt) (qemu-storage-daemon main thread in {} <- qmp_transaction; backtrace: qemu-backtrace.txt)"
    )
    for frame in ("bdrv_drain_all_begin <- bdrv_drain_all", "bdrv_do_drained_begin <- drive_backup_action"):
        assert ki.listed_failure(reason.format(frame), "10.0.13", [issue], REPRODUCER).status == "WARN"
    assert ki.listed_failure(reason.format("nbd_drained_poll"), "10.0.13", [issue]) is None
    # the guest's writes stop with the daemon: the storm may see it first, as a device stall
    stalled = "device stalled: storm wrote nothing to ['disk0'] within 30 s (qemu-storage-daemon main thread in {})"
    stall = ki.listed_failure(stalled.format("bdrv_drain_all_begin <- bdrv_graph_wrlock_drained"), "10.0.13", [issue])
    assert stall is not None and stall.matched is issue
    assert ki.listed_failure(reason.format("bdrv_drain_all_begin"), "7.2.22", [issue]).status == "FAIL"  # not there
    assert ki.match_crash("QEMU main thread in bdrv_drain_all_begin <-", [issue]) is None  # not the daemon's
    assert ki.still_reproduces(issue, "10.2.2") == "known issue KI-11 (a hang), still reproduces on QEMU 10.2.2"


def test_a_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(ki.KnownIssuesError, match="cannot read known issues from"):
        ki.load(tmp_path / "nope.json")


def test_get_names_the_known_ids():
    issues = issues_of(entry())
    assert ki.get("KI-1", issues).title == "client disconnect aborts"
    with pytest.raises(ki.KnownIssuesError, match=r"no known issue 'KI-9' in the list \(KI-1\)"):
        ki.get("KI-9", issues)


def test_the_known_issues_page_is_generated_from_the_json():
    from txnstorm.runner import known_issues_doc

    page = known_issues_doc.markdown(ki.load())
    assert known_issues_doc.PAGE.read_text() == page, "stale: run scripts/txnstorm known-issues --write"
    for issue in ki.load():
        assert f"| {issue.id} |" in page


# -- where a known issue is known (issue #38) ---------------------------------------------------
KI8_REASON = ("QEMU crashed: QEMU killed by SIGABRT: qemu-system-x86_64: ../nbd/server.c:1584: blk_aio_attached: "
              "Assertion `client->recv_coroutine == NULL' failed.")  # fmt: skip
KI5_REASON = ("QEMU crashed: QEMU killed by SIGABRT: qemu-system-x86_64: ../block/io.c:410: bdrv_do_drained_end: "
              "Assertion `bs->quiesce_counter > 0' failed.")  # fmt: skip
GUEST_ONLY = "tests/drain_stop_cont.py:StoppedVmIsStill.test_stopped_vm_writes_nothing_and_resumes"


def test_a_fixed_bug_that_comes_back_is_a_regression_not_a_known_issue():
    """Issue #38's case: 9c707525cb reverted on 10.2.2, QEMU aborts with KI-8's assertion in a
    guest-only drain test.  KI-8 was fixed upstream in 9.0 and never seen on 10.2.2: a FAIL."""
    issues = ki.load()
    verdict = ki.listed_failure(KI8_REASON, "10.2.2", issues, GUEST_ONLY)
    assert verdict is not None and verdict.status == "FAIL", verdict
    assert verdict.label == "regression of KI-8 (fixed in 9.0 by 9c707525cb; not seen on 10.2.2 before)"
    assert ki.failure_facts(verdict) == {"known_issue": None, "regression_of": "KI-8"}
    # in its own reproducer too: the version decides, not the test
    assert ki.listed_failure(KI8_REASON, "10.2.2", issues, ki.get("KI-8", issues).reproducer).status == "FAIL"
    # a stable release that got the backport has the fix; the one before it does not
    assert "backported to 8.2.3" in ki.listed_failure(KI8_REASON, "8.2.3", issues, GUEST_ONLY).label
    assert ki.listed_failure(KI8_REASON, "8.2.2", issues, GUEST_ONLY).status == "WARN"


def test_a_match_inside_its_scope_is_warn_and_says_nothing_more():
    issues = ki.load()
    test = "1-/home/me/txnstorm/" + ki.get("KI-8", issues).reproducer  # Avocado's id, from another directory
    verdict = ki.listed_failure(KI8_REASON, "7.2.22", issues, test)
    assert (verdict.status, verdict.scope) == ("WARN", "known")
    assert verdict.label == "known issue KI-8, still reproduces on QEMU 7.2.22"
    assert ki.failure_facts(verdict) == {"known_issue": "KI-8", "scope": "known"}


def test_a_match_outside_the_measured_tests_says_both_and_stays_warn():
    """On a version it affects, in a test that never reproduced it: the same fault reached another
    way.  WARN (the job stays green), and the label names what to add to the entry."""
    verdict = ki.listed_failure(KI8_REASON, "7.2.22", ki.load(), GUEST_ONLY)
    assert (verdict.status, verdict.scope) == ("WARN", "outside")
    assert verdict.label == (
        "known issue KI-8, still reproduces on QEMU 7.2.22, outside what was measured: this test never "
        "reproduced KI-8 (its tests: DaemonBackupOfExportedNode, DaemonNbdStorm)"
    )


def test_an_unmeasured_version_follows_the_nearest_measured_one():
    """A user's git build: an issue nobody fixed (KI-5, affected on 10.2.2) is WARN, said outside
    what was measured; one that was gone by 10.2.2 (KI-2) coming back is a regression."""
    issues = ki.load()
    kept = ki.judge(ki.get("KI-5", issues), "11.1.50", KI5_REASON, issues)
    assert kept.status == "WARN" and kept.label == (
        "known issue KI-5, still reproduces on QEMU 11.1.50, outside what was measured: QEMU 11.1.50 not "
        "measured; affected on 10.2.2"
    )
    ki2 = ki.get("KI-2", issues)
    back = ki.judge(ki2, "11.1.50", f"QEMU crashed: {ki2.signature}", issues)
    assert back.status == "FAIL" and back.label.startswith("regression of KI-2 (not seen on 10.2.2 before (")
    assert "QEMU 11.1.50 not measured" in back.label
    # a version where the issue was masked by another is not a measurement of it: KI-13 on 10.0.13
    ki13 = ki.get("KI-13", issues).scope.expect("10.0.13")
    assert ki13.affected and not ki13.measured and "affected on 7.2.22" in ki13.why


def test_stock_qemus_stay_green_where_their_issues_are_known():
    """Every reproducer's match on every version measured affected is WARN "still reproduces", no
    note; the quick tier's reproducers: KI-1 and KI-5 WARN on 7.2.22, KI-5 WARN and KI-1 PASS on 10.2.2."""
    issues = ki.load()
    hangs = {  # a hang's signature is a pattern: a reason line it matches
        "KI-11": "QEMU hung: QMP transaction: no answer within 60 s (qemu-storage-daemon main thread in "
                 "bdrv_drain_all_begin <- qmp_transaction)",
        "KI-13": "device stalled: storm wrote nothing to ['disk0'] within 30 s (qemu-storage-daemon main thread "
                 "in its main loop (idle); backtrace: qemu-backtrace.txt)",
        "KI-15": "QEMU hung at 'round 1: nbd-server-stop with a writing and a negotiating client': "
                 "QMP nbd-server-stop: no answer within 30 s (QEMU backtrace: qemu-backtrace.txt)",
    }  # fmt: skip
    for issue in issues:
        for version in issue.scope.versions("affected"):
            reason = hangs.get(issue.id, f"QEMU crashed: {issue.signature}")
            verdict = ki.judge(issue, version, reason, issues)
            assert (verdict.status, verdict.scope) == ("WARN", "known"), (issue.id, version, verdict.label)
    ki1, ki5 = ki.get("KI-1", issues), ki.get("KI-5", issues)
    assert ki.judge(ki1, "7.2.22", f"QEMU crashed: {ki1.signature}", issues).status == "WARN"
    assert ki.judge(ki5, "10.2.2", KI5_REASON, issues).status == "WARN"
    gone = ki.judge(ki1, "10.2.2", None, issues, tries=5)
    assert gone.status == "PASS" and gone.label.startswith("known issue KI-1, does not reproduce on QEMU 10.2.2 (")
    # a stall of KI-7 in the quick tier's race test, on either stock QEMU: WARN
    race = "tests/transaction_matrix.py:TransactionMatrix.test_guest_races_the_transaction"
    for version in ("7.2.22", "10.2.2"):
        stalled = ki.listed_failure("device stalled: ... stall class: completed-not-seen ...", version, issues, race)
        assert (stalled.status, stalled.scope) == ("WARN", "known"), stalled.label


def test_every_entry_says_where_it_is_known():
    """The three versions the project measures, each entry's tests by id, and the public record."""
    repo = Path(ki.DEFAULT_PATH).parent
    for issue in ki.load():
        measured = {".".join(map(str, m.qemu)) for m in issue.scope.measured}
        assert measured == {"7.2.22", "10.0.13", "10.2.2"}, (issue.id, measured)
        for shape in issue.scope.shapes:
            path, _, name = shape.partition(":")
            assert name.split(".")[0] in (repo / path).read_text(), f"{issue.id}: no {name} in {path}"
    fixed = {i.id: i.scope.upstream for i in ki.load() if i.scope.upstream.status == "fixed"}
    assert {k: (u.commit, ki.format_version(u.release)) for k, u in fixed.items()} == {
        "KI-1": ("7c1f51bf38", "8.1.0"), "KI-8": ("9c707525cb", "9.0.0")
    }  # fmt: skip
    for key in ("KI-7", "KI-10", "KI-11", "KI-12"):
        assert ki.get(key, ki.load()).scope.upstream.status == "not fixed"


def test_a_test_is_one_of_an_issues_tests_by_its_file_and_name():
    """Avocado's ids carry a '1-' prefix and the path they were given; a shape may name a class."""
    scope = ki.get("KI-7", ki.load()).scope
    assert scope.has_shape("1-tests/stall_known_issues.py:LostNotificationAfterDrains.test_stop_and_cont_during_storm")
    assert scope.has_shape("/srv/txnstorm/tests/stall_known_issues.py:LostNotificationAfterDrains.test_failing_"
                           "transactions_during_storm")  # fmt: skip
    assert not scope.has_shape("tests/stall_known_issues.py:LostNotificationAfterDrainsToo.test_x")
    assert not scope.has_shape("tests/other.py:LostNotificationAfterDrains.test_stop_and_cont_during_storm")
    assert not scope.has_shape(None)


def test_a_fix_is_in_its_release_on_and_in_the_stable_lines_it_was_backported_to():
    upstream = ki.get("KI-8", ki.load()).scope.upstream
    assert [upstream.has_fix(v) for v in ("7.2.22", "8.2.2", "8.2.3", "8.2.10", "9.0.0", "9.0.0-rc0", "11.1.0")] == [
        False, False, True, True, True, True, True
    ]  # fmt: skip
    assert upstream.fix_in("8.2.3") == "fixed in 9.0 by 9c707525cb, backported to 8.2.3"
    assert upstream.fix_in("10.2.4") == "fixed in 9.0 by 9c707525cb"
    assert not upstream.has_fix("8.1.5"), "another stable line"
