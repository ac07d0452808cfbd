"""Known issues visible in a junit view (GitLab, Jenkins): Avocado's xunit
writes a WARN as a plain pass, so a known issue that still reproduces would
hide there.  Each WARN test case gets a ``<skipped>`` element whose message is
its verdict ("WARN: known issue KI-5, still reproduces on QEMU 7.2.22") and
the same line as ``<system-out>``; the suite's ``skipped`` count follows.
Junit has no "warning" state: skipped with a message is the one a junit view
shows as neither green nor red, which is what a known issue is.
"""

from __future__ import annotations

import json
from pathlib import Path
from xml.dom import minidom


def warn_reasons(job_dir: Path) -> dict[str, str]:
    """{test name: WARN reason} from results.json."""
    try:
        tests = json.loads((job_dir / "results.json").read_text()).get("tests", [])
    except (OSError, ValueError):
        return {}
    return {t["name"]: t.get("fail_reason") or "WARN" for t in tests if t.get("status") == "WARN" and "name" in t}


def mark_known_issues(job_dir: Path) -> int:
    """Annotate results.xml in place; return how many test cases were marked."""
    xml_path = Path(job_dir) / "results.xml"
    reasons = warn_reasons(Path(job_dir))
    if not reasons or not xml_path.is_file():
        return 0
    document = minidom.parse(str(xml_path))
    marked = 0
    for case in document.getElementsByTagName("testcase"):
        reason = reasons.get(case.getAttribute("name"))
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
