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
    assert skipped.getAttribute("message") == f"WARN: {label}"
    assert known.getElementsByTagName("system-out")[0].firstChild.data.strip() == f"WARN: {label}"
