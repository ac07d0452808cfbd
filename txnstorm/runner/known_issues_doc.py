"""``docs/known-issues.md``, generated from ``known-issues.json`` so the two never disagree
(``scripts/txnstorm known-issues --write``; a unit test fails when the page is stale)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from txnstorm import REPO
from txnstorm.oracles.known_issues import KnownIssue

PAGE = REPO / "docs" / "known-issues.md"

INTRO = """\
# Known issues (QEMU bugs the suite reproduces)

Generated from [`known-issues.json`](../known-issues.json) by `scripts/txnstorm known-issues --write`;
edit the JSON, not this page.  How the suite judges them (WARN "still reproduces", "not seen this run"
with the chance of a miss, stalls and hangs matched by class or pattern) is in
[running.md](running.md#known-issues-qemu-bugs-the-suite-reproduces).

| id | kind | QEMU versions | what | rate of one try | reproducer | report |
|---|---|---|---|---|---|---|
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _report_link(issue: KnownIssue) -> str:
    if not issue.report:
        return "-"
    return f"[{Path(issue.report).name}]({Path(issue.report).relative_to('docs')})"


def markdown(issues: Sequence[KnownIssue]) -> str:
    """The page: one table row per issue, then what was seen, per issue."""
    rows = [
        f"| {i.id} | {i.kind} | {_cell(i.affects.describe())} | {_cell(i.title)} | {i.rate.describe()} | "
        f"`{i.reproducer}` | {_report_link(i)} |"
        for i in issues
    ]
    seen = [f"### {i.id}: {_cell(i.title)}\n\nSignature: `{i.signature}`\n\n{i.seen}\n" for i in issues]
    return INTRO + "\n".join(rows) + "\n\n## What was seen, per issue\n\n" + "\n".join(seen)
