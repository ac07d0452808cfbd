"""Known issues visible in a junit view (GitLab, Jenkins): Avocado's xunit
writes a WARN as a plain pass, so a known issue that still reproduces would
hide there.  Each WARN test case gets a ``<skipped>`` element whose message is
its verdict ("WARN: known issue KI-5, still reproduces on QEMU 7.2.22") and
the same line as ``<system-out>``; the suite's ``skipped`` count follows.
Junit has no "warning" state: skipped with a message is the one a junit view
shows as neither green nor red, which is what a known issue is.  The message
names the issue too ("KI-5: <title>; report: docs/findings/KI-5/report.md").

A failed test case (``<failure>`` or ``<error>``) gets its seed, the line that
replays it on the QEMU it failed on and, for a FAIL, the ``git bisect run``
line, at the head of its text and as ``<system-out>``: what a maintainer acts
on, in the view CI shows first.
"""

from __future__ import annotations

import json
from pathlib import Path
from xml.dom import minidom

from txnstorm.runner import report, runs


def _tests(job_dir: Path) -> list[dict]:
    try:
        return json.loads((job_dir / "results.json").read_text()).get("tests", [])
    except (OSError, ValueError):
        return []


def warn_reasons(job_dir: Path) -> dict[str, str]:
    """{test name: WARN reason, with the known issue's title and report} from results.json."""
    reasons = {}
    for test in _tests(job_dir):
        if test.get("status") != "WARN" or "name" not in test:
            continue
        reason = test.get("fail_reason") or "WARN"
        issue = report.known_issue_of(test)
        if issue and issue["title"]:
            where = f"; report: {issue['report']}" if issue["report"] else ""
            reason += f" [{issue['id']}: {issue['title']}{where}]"
        reasons[test["name"]] = reason
    return reasons


def failure_notes(job_dir: Path) -> dict[str, str]:
    """{test name: seed, replay line and bisect line} of each failed test."""
    notes = {}
    for test in _tests(job_dir):
        if test.get("status") not in report.FAILED or "name" not in test:
            continue
        lines = [f"seed: {runs.whiteboard(test).get('seed', '?')}", f"replay: {runs.replay_command(test)}"]
        if test.get("status") == "FAIL":
            lines.append(f"bisect: {runs.bisect_command(test)}")
        notes[test["name"]] = "\n".join(lines)
    return notes


def _text(element: minidom.Element) -> str:
    return "".join(n.data for n in element.childNodes if n.nodeType in (n.TEXT_NODE, n.CDATA_SECTION_NODE))


def mark_known_issues(job_dir: Path) -> int:
    """Annotate results.xml in place (known issues, failures' replay lines); return how many test cases
    were marked as known issues.  Doing it twice changes nothing."""
    xml_path = Path(job_dir) / "results.xml"
    reasons, notes = warn_reasons(Path(job_dir)), failure_notes(Path(job_dir))
    if not (reasons or notes) or not xml_path.is_file():
        return 0
    document = minidom.parse(str(xml_path))
    marked = 0
    for case in document.getElementsByTagName("testcase"):
        name = case.getAttribute("name")
        note = notes.get(name)
        failed = case.getElementsByTagName("failure") + case.getElementsByTagName("error")
        if note and failed and not _text(failed[0]).startswith("seed: "):
            failed[0].insertBefore(document.createTextNode(note + "\n\n"), failed[0].firstChild)
            out = document.createElement("system-out")
            out.appendChild(document.createTextNode(note + "\n"))
            case.appendChild(out)
        reason = reasons.get(name)
        if reason is None or case.getElementsByTagName("skipped"):
            continue
        skipped = document.createElement("skipped")
        skipped.setAttribute("type", "known-issue")
        skipped.setAttribute("message", f"WARN: {reason}")
        case.appendChild(skipped)
        out = document.createElement("system-out")
        out.appendChild(document.createTextNode(f"WARN: {reason}\n"))
        case.appendChild(out)
        marked += 1
    for suite in document.getElementsByTagName("testsuite"):
        suite.setAttribute("skipped", str(int(suite.getAttribute("skipped") or 0) + marked))
    xml_path.write_text(document.toxml(encoding="UTF-8").decode())
    return marked
