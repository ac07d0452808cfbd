"""``docs/known-issues.md``, generated from ``known-issues.json`` so the two never disagree
(``scripts/txnstorm known-issues --write``; a unit test fails when the page is stale)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from txnstorm import REPO
from txnstorm.oracles.known_issues import KnownIssue
from txnstorm.oracles.known_scope import format_version, release_name

PAGE = REPO / "docs" / "known-issues.md"

RULES = [
    ("a version measured affected, in a test that reproduced it",
     '**WARN** "known issue KI-n, still reproduces on QEMU x"'),
    ("a version measured absent, or that has the upstream fix",
     '**FAIL** "regression of KI-n (fixed in 9.0 by 9c707525cb; not seen on 10.2.2 before): *the reason*", '
     "with the evidence of any crash"),
    ("a version not measured (a git build, a distribution's release, a version where it was masked)",
     "unless it has the fix, the nearest measured version decides (the newest at or below it, else the oldest "
     'above): affected there, **WARN** "..., outside what was measured: QEMU 11.1.50 not measured; affected on '
     '10.2.2"; absent there, **FAIL** "regression of KI-n (not seen on 10.2.2 before ...)"'),
    ("a version it affects, in a test that never reproduced it",
     '**WARN** "..., outside what was measured: this test never reproduced KI-n (its tests: ...)"'),
]  # fmt: skip

INTRO = """\
# Known issues (QEMU bugs the suite reproduces)

Generated from [`known-issues.json`](../known-issues.json) by `scripts/txnstorm known-issues --write`;
edit the JSON, not this page.  How the suite judges them (WARN "still reproduces", "not seen this run"
with the chance of a miss, stalls and hangs matched by class or pattern) is in
[running.md](running.md#known-issues-qemu-bugs-the-suite-reproduces).

**A known issue excuses only where it is known.**  Each entry says where: the QEMU versions it was
measured on (affected; absent: tried, not seen; masked: another fault ends the trigger first), the
tests that reproduced it, and the public record's upstream fix (its commit, the first release with it,
the stable releases it was backported to).  A failure whose reason names an issue's signature is:

{rules}

Why WARN outside what was measured and not FAIL: nothing says the QEMU under test changed.  The same
fault reached from an unmeasured build of an unfixed tree, or from another test, has the same fix, and
a red job for a fault already listed would bury the findings that are new; the label says both the match
and what to add to the entry.  Where a *change* is judged, `make validate` compares with the base: a
known issue the series shows and the base never did is a regression unless the entry knows it on that
version in that test ([validate.md](validate.md)).

| id | kind | where it is known (QEMU) | upstream | what | rate of one try | reproducer | report |
|---|---|---|---|---|---|---|---|
""".replace("{rules}", "| where | verdict |\n|---|---|\n" + "\n".join(f"| {w} | {v} |" for w, v in RULES))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _report_link(issue: KnownIssue) -> str:
    if not issue.report:
        return "-"
    return f"[{Path(issue.report).name}]({Path(issue.report).relative_to('docs')})"


def _upstream_cell(issue: KnownIssue) -> str:
    upstream = issue.scope.upstream
    if upstream.fix:
        backports = ", ".join(release_name(b) for b in upstream.backports)
        return upstream.fix + (f" (and {backports})" if backports else "")
    return "not fixed" if upstream.status == "not fixed" else "not known"


def _where(issue: KnownIssue) -> str:
    """The issue's scope, one line per measured version, its tests and its upstream record."""
    scope = issue.scope
    lines = [f"- QEMU {format_version(m.qemu)}: **{m.result}**: {_cell(m.how)}"
             for m in sorted(scope.measured, key=lambda m: m.qemu)]  # fmt: skip
    lines.append("- tests that reproduced it: " + ", ".join(f"`{s}`" for s in scope.shapes))
    lines.append(f"- upstream: {_cell(scope.upstream.describe())}")
    return "\n".join(lines)


def markdown(issues: Sequence[KnownIssue]) -> str:
    """The page: one table row per issue, then where each is known and what was seen."""
    rows = [
        f"| {i.id} | {i.kind} | {_cell(i.scope.measured_line())} | {_cell(_upstream_cell(i))} | {_cell(i.title)} | "
        f"{i.rate.describe()} | `{i.reproducer}` | {_report_link(i)} |"
        for i in issues
    ]
    seen = [f"### {i.id}: {_cell(i.title)}\n\nSignature: `{i.signature}`\n\n{_where(i)}\n\n{i.seen}\n" for i in issues]
    return INTRO + "\n".join(rows) + "\n\n## Where each is known and what was seen\n\n" + "\n".join(seen)
