"""A known issue stays visible in a junit view: Avocado writes WARN as a pass."""

import json
from xml.dom import minidom

from txnstorm.runner import junit

XML = """<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="job" tests="2" errors="0" failures="0" skipped="0" time="1.0">
	<testcase classname="A" name="tests/a.py:A.test_ok" time="0.5"/>
	<testcase classname="B" name="tests/b.py:B.test_known" time="0.5"/>
</testsuite>
"""


def test_a_known_issue_becomes_skipped_with_its_verdict(tmp_path):
    label = "known issue KI-5, still reproduces on QEMU 7.2.22"
    tests = [
        {"name": "tests/a.py:A.test_ok", "status": "PASS", "fail_reason": None},
        {"name": "tests/b.py:B.test_known", "status": "WARN", "fail_reason": label},
    ]
    (tmp_path / "results.json").write_text(json.dumps({"tests": tests}))
    (tmp_path / "results.xml").write_text(XML)
    assert junit.mark_known_issues(tmp_path) == 1
    assert junit.mark_known_issues(tmp_path) == 0, "marking twice changes nothing"
    doc = minidom.parse(str(tmp_path / "results.xml"))
    suite = doc.getElementsByTagName("testsuite")[0]
    assert suite.getAttribute("skipped") == "1"
    ok, known = doc.getElementsByTagName("testcase")
    assert not ok.childNodes
    (skipped,) = known.getElementsByTagName("skipped")
    assert skipped.getAttribute("message").startswith(f"WARN: {label} [KI-5: ")
    assert known.getElementsByTagName("system-out")[0].firstChild.data.strip() == skipped.getAttribute("message")


FAILED_XML = """<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="job" tests="2" errors="0" failures="1" skipped="0" time="1.0">
	<testcase classname="F" name="tests/f.py:F.test_z" time="0.5"><failure type="TestFail" message="x">Traceback
	</failure></testcase>
	<testcase classname="B" name="tests/b.py:B.test_known" time="0.5"/>
</testsuite>
"""


def test_a_failure_carries_its_seed_replay_and_bisect_lines_and_a_known_issue_its_title(tmp_path):
    board = {"seed": 42, "qemu_path": "/q/qemu-system-x86_64", "accel": "tcg"}
    tests = [
        {"name": "tests/f.py:F.test_z", "id": "1-tests/f.py:F.test_z", "status": "FAIL", "fail_reason": "x",
         "whiteboard": json.dumps(board)},
        {"name": "tests/b.py:B.test_known", "status": "WARN",
         "fail_reason": "known issue KI-5, still reproduces on QEMU 7.2.22"},
    ]  # fmt: skip
    (tmp_path / "results.json").write_text(json.dumps({"tests": tests}))
    (tmp_path / "results.xml").write_text(FAILED_XML)
    junit.mark_known_issues(tmp_path)
    junit.mark_known_issues(tmp_path)
    doc = minidom.parse(str(tmp_path / "results.xml"))
    failed, known = doc.getElementsByTagName("testcase")
    text = failed.getElementsByTagName("failure")[0].firstChild.data
    assert text.startswith("seed: 42\nreplay: make run TEST=tests/f.py:F.test_z SEED=42 QEMU=/q/qemu-system-x86_64 "
                           "ACCEL=tcg\nbisect: git bisect run ")  # fmt: skip
    assert len(failed.getElementsByTagName("system-out")) == 1, "annotating twice adds nothing"
    message = known.getElementsByTagName("skipped")[0].getAttribute("message")
    assert "[KI-5: QEMU aborts when a transaction backs up" in message
    assert "report: docs/findings/KI-5/report.md]" in message
