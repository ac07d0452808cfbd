import json
from pathlib import Path

import pytest

from txnstorm.errors import UserError
from txnstorm.oracles import known_issues as ki

KI1_LINE = (
    "qemu-system-x86_64: ../../blockdev-nbd.c:62: nbd_blockdev_client_closed: "
    "Assertion `qemu_in_main_thread() && nbd_server' failed."
)
KI1_REPORT = f"QEMU killed by SIGABRT: {KI1_LINE}"


def entry(**overrides: object) -> dict:
    base = {
        "id": "KI-1",
        "title": "client disconnect aborts",
        "affects": {"min": "7.2.0", "max_exclusive": "8.0.0"},
        "signature": "nbd_blockdev_client_closed: Assertion `qemu_in_main_thread() && nbd_server' failed",
        "reproducer": "tests/nbd_known_issues.py:NbdClientDisconnectIothread.test_disconnect",
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


def test_affects_is_half_open():
    (issue,) = issues_of(entry())
    assert ki.affects(issue, (7, 2, 0))
    assert ki.affects(issue, "7.2.22")
    assert ki.affects(issue, (7, 2))  # short tuples are padded with zeros
    assert not ki.affects(issue, (8, 0, 0))
    assert not ki.affects(issue, (7, 1, 9))


def test_unknown_bounds_are_open():
    (issue,) = issues_of(entry(affects={"min": "7.2.22", "max_exclusive": "unknown"}))
    assert ki.affects(issue, (10, 1, 0))
    assert not ki.affects(issue, (7, 2, 21))
    assert issue.affects.describe() == ">= 7.2.22, < unknown"
    (anything,) = issues_of(entry(affects={"min": "unknown", "max_exclusive": "unknown"}))
    assert ki.affects(anything, (1, 0, 0))


def test_parse_version_takes_qemu_dev_versions():
    assert ki.parse_version("7.2.22") == (7, 2, 22)
    assert ki.parse_version("8.2.90 (v9.0.0-rc0)") == (8, 2, 90)
    with pytest.raises(ValueError):
        ki.parse_version("")


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
    verdict = ki.judge(issues[0], "7.2.22", KI1_REPORT, issues)
    assert (verdict.status, verdict.label) == ("WARN", "known issue KI-1, still reproduces on QEMU 7.2.22")
    assert verdict.as_dict()["matched"] == "KI-1" and verdict.reproduced


def test_judge_no_crash_of_a_certain_reproducer_is_pass():
    issues = issues_of(entry())
    verdict = ki.judge(issues[0], (7, 2, 22), None, issues, tries=2)
    assert verdict.status == "PASS"
    assert verdict.label == (
        "known issue KI-1, no longer reproduces on QEMU 7.2.22: did not reproduce in 2 attempts "
        "(listed rate 5/5 per attempt: chance of a miss 0 %)"
    )
    assert not verdict.reproduced
    assert ki.judge(issues[0], "9.0.0", None, issues).status == "PASS"


def test_a_race_that_did_not_fire_is_not_seen_not_fixed():
    """The KI-2 race crashed 44 of 53 boots: one quiet boot leaves a 17 % chance it is still there."""
    race = entry(id="KI-2", rate={"hits": 44, "tries": 53, "per": "boot"})
    (issue,) = issues_of(race)
    verdict = ki.judge(issue, "7.2.22", None, [issue], tries=1)
    assert verdict.status == "WARN", verdict.label
    assert verdict.label == (
        "known issue KI-2, not seen this run on QEMU 7.2.22: did not reproduce in 1 boot "
        "(listed rate 44/53 per boot: chance of a miss 17 %); not judged fixed"
    )
    assert not verdict.reproduced and verdict.as_dict()["miss_chance"] == pytest.approx(9 / 53)
    # Three quiet boots: 0.5 % -- small enough to call it gone.
    assert ki.judge(issue, "7.2.22", None, [issue], tries=3).status == "PASS"


@pytest.mark.parametrize(
    "rate",
    [None, {"hits": 0, "tries": 5, "per": "boot"}, {"hits": 6, "tries": 5, "per": "boot"},
     {"hits": 1, "tries": 5}, {"hits": "1", "tries": 5, "per": "boot"}, {"hits": 1, "tries": 5, "per": " "}],
)  # fmt: skip
def test_a_rate_must_be_hits_per_try(rate):
    with pytest.raises(UserError, match="rate must be"):
        issues_of(entry(rate=rate))


def test_judge_crash_on_a_version_not_listed_is_a_new_failure():
    issues = issues_of(entry())
    verdict = ki.judge(issues[0], "9.0.0", KI1_REPORT, issues)
    assert verdict.status == "FAIL"
    assert verdict.label.startswith("NEW failure on QEMU 9.0.0")
    assert "listed only for QEMU >= 7.2.0, < 8.0.0" in verdict.label


def test_judge_unknown_crash_is_a_new_failure():
    issues = issues_of(entry())
    verdict = ki.judge(issues[0], "7.2.22", "QEMU killed by SIGSEGV: Formatting 'x.qcow2'", issues)
    assert verdict.status == "FAIL"
    assert "no known signature" in verdict.label and "SIGSEGV" in verdict.label


def test_judge_names_another_listed_issue_that_struck_first():
    issues = issues_of(entry(id="KI-2", signature="nbd_co_receive_request"), entry(id="KI-3"))
    verdict = ki.judge(issues[0], "7.2.22", KI1_REPORT, issues)
    assert verdict.status == "WARN"
    assert verdict.label == "known issue KI-3, still reproduces on QEMU 7.2.22 (while reproducing KI-2)"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("{", "not valid JSON"),
        ('{"id": "KI-1"}', "top level must be a list"),
        (json.dumps([entry(id="bug-1")]), "must look like 'KI-1'"),
        (json.dumps([{k: v for k, v in entry().items() if k != "signature"}]), "missing field(s) signature"),
        (json.dumps([entry(colour="red")]), "unknown field(s) colour"),
        (json.dumps([entry(signature="")]), "signature must be a non-empty string"),
        (json.dumps([entry(affects={"min": "7.2"})]), "affects must be"),
        (json.dumps([entry(affects={"min": "seven", "max_exclusive": "8.0.0"})]), "affects.min must be a version"),
        (json.dumps([entry(affects={"min": "8.0.0", "max_exclusive": "7.2.0"})]), "affects is empty"),
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
        id="KI-11", kind="hang", affects={"min": "10.0.13", "max_exclusive": "unknown"},
        signature=KI11_SIGNATURE,
    ))  # fmt: skip
    reason = (
        "QEMU hung: QMP transaction: no answer within 60 s (QEMU main thread in its main loop (idle); backtrace: "
        "qemu-backtrace.txt) (qemu-storage-daemon main thread in {} <- qmp_transaction; backtrace: qemu-backtrace.txt)"
    )
    for frame in ("bdrv_drain_all_begin <- bdrv_drain_all", "bdrv_do_drained_begin <- drive_backup_action"):
        assert ki.listed_failure(reason.format(frame), "10.2.2", [issue]) is issue
    assert ki.listed_failure(reason.format("nbd_drained_poll"), "10.2.2", [issue]) is None
    # the guest's writes stop with the daemon: the storm may see it first, as a device stall
    stalled = "device stalled: storm wrote nothing to ['disk0'] within 30 s (qemu-storage-daemon main thread in {})"
    assert ki.listed_failure(stalled.format("bdrv_drain_all_begin <- bdrv_graph_wrlock_drained"), "10.2.2", [issue])
    assert ki.listed_failure(reason.format("bdrv_drain_all_begin"), "7.2.22", [issue]) is None  # not affected
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
