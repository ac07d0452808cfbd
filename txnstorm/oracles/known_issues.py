"""Known QEMU bugs the suite reproduces on purpose: ``known-issues.json``.

Each entry::

    {"id": "KI-1", "title": "...",
     "measured": [{"qemu": "7.2.22", "result": "affected", "how": "11 of 11 runs"}, ...],
     "shapes": ["<Avocado test id of each test that reproduced it>", ...],
     "upstream": {"status": "fixed", "commit": "...", "subject": "...", "release": "8.1.0"},
     "signature": "<substring of QEMU's stderr when it aborts>",
     "reproducer": "<Avocado test id>",
     "rate": {"hits": 44, "tries": 53, "per": "boot"},
     "seen": "<what was observed, with rates>",
     "kind": "crash"}

``kind`` (optional, default ``crash``) says what the signature matches:

* ``crash``: a substring of QEMU's stderr or exit report when it aborts;
* ``stall``: a device that stops completing guest requests while QEMU still
  answers, matched by the evidence ``oracles/stall.py`` keeps before QEMU
  is killed: ``"stall class: ring-not-taken"`` (which side holds the
  requests; the classes are listed there).  Any test whose device stalls
  is judged by it, not only the reproducer;
* ``hang``: a regular expression searched in a hang's reason, which names
  where the hung process's main thread waits (``Machine.keep_backtrace``:
  ``"qemu-storage-daemon main thread in bdrv_drain_all_begin <- ..."``).

``measured``, ``shapes`` and ``upstream`` say where the issue is known
(``known_scope``): the versions it was measured on, affected or not, the
tests that reproduced it, and its upstream fix.  **A match excuses only
inside that scope.**  A failure whose reason names a listed signature is:

* WARN "known issue KI-n, still reproduces on QEMU x.y.z" on a version
  measured affected, in a test that reproduced it before;
* FAIL "regression of KI-n (fixed in 9.0 by 9c707525cb; not seen on 10.2.2
  before): <the reason>" on a version where it was measured absent, or that
  has its upstream fix, or (unmeasured) whose nearest measured version did
  not have it: a fixed bug that comes back is what a maintainer must see,
  with the same evidence as any crash;
* WARN, saying both the match and that it is **outside what was measured**
  ("... still reproduces on QEMU 11.1.50, outside what was measured: QEMU
  11.1.50 not measured; affected on 10.2.2"), on an unmeasured version
  whose nearest measured one had it (a user's git build of a tree with a
  fault nobody fixed), or in a test that never reproduced it on a version it
  affects.  Not a FAIL: nothing says the QEMU under test changed (the same
  fault, reached from another version or test, has the same fix), and a red
  job for a fault already listed would bury the findings that are new; the
  label says what to add to the entry.  Where it matters that a *change*
  brought it, ``make validate`` compares with the base and calls a known
  issue the series shows outside its scope a regression.

A reproducer's outcome becomes one ``Verdict``:

* the crash matches a listed issue: as above (WARN or FAIL);
* no crash in N tries, where the listed ``rate`` (hits per try of the
  reproducer, as measured) leaves a chance of a miss ``(1 - p)^N`` below
  ``MISS_CHANCE_FOR_FIXED`` (1 %): PASS, "no longer reproduces";
* no crash, but a miss is still likely (a race that did not fire): WARN,
  "not seen this run", with the tries and the chance of a miss; never a
  PASS that hides a listed issue;
* no crash on a version where the issue is not expected: PASS, "does not
  reproduce";
* any other crash (no signature matches): FAIL, a NEW failure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from txnstorm import REPO
from txnstorm.errors import UserError
from txnstorm.oracles import known_scope
from txnstorm.oracles.known_scope import Scope, Version, format_version
from txnstorm.oracles.stall import CLASSES as STALL_CLASSES
from txnstorm.oracles.stall import SIGNATURE_PREFIX as STALL_PREFIX

DEFAULT_PATH = REPO / "known-issues.json"
FIELDS = ("id", "title", "measured", "shapes", "upstream", "signature", "reproducer", "rate", "seen")
OPTIONAL_FIELDS = ("kind", "report")
KINDS = ("crash", "stall", "hang")
MISS_CHANCE_FOR_FIXED = 0.01  # below this, "did not reproduce" is evidence enough for "no longer reproduces"
_ID_RE = re.compile(r"^KI-\d+$")


class KnownIssuesError(UserError):
    """known-issues.json cannot be read or is malformed; the text says where."""


@dataclass(frozen=True)
class Rate:
    """How often one try of the reproducer hit the issue where it was measured."""

    hits: int
    tries: int
    per: str  # what one try is: "boot", "attempt", "transaction"

    @property
    def p(self) -> float:
        return self.hits / self.tries

    def miss_chance(self, tries: int) -> float:
        """The chance that ``tries`` tries all miss an issue still present."""
        return (1.0 - self.p) ** tries

    def describe(self) -> str:
        return f"{self.hits}/{self.tries} per {self.per}"


@dataclass(frozen=True)
class KnownIssue:
    id: str
    title: str
    scope: Scope
    signature: str
    reproducer: str
    rate: Rate
    seen: str
    kind: str = "crash"
    report: str = ""  # its report for upstream (docs/findings/...), relative to the checkout

    @property
    def affects(self) -> Scope:
        """Where it is known (``describe()`` is the line the reproducer's log starts with)."""
        return self.scope

    def matches(self, text: str) -> bool:
        """The signature occurs in ``text`` (a hang's: as a regular expression)."""
        return bool(re.search(self.signature, text)) if self.kind == "hang" else self.signature in text


# -- loading -------------------------------------------------------------------
def _entry(where: str, raw: Any) -> KnownIssue:
    if not isinstance(raw, dict):
        raise KnownIssuesError(f"{where}: an entry must be an object, not {type(raw).__name__}")
    if "affects" in raw:
        raise KnownIssuesError(f"{where}: affects (a version range) is replaced by measured, shapes and upstream: "
                               "where the issue is known (docs/known-issues.md)")  # fmt: skip
    missing = [f for f in FIELDS if f not in raw]
    if missing:
        raise KnownIssuesError(f"{where}: missing field(s) {', '.join(missing)}")
    extra = sorted(set(raw) - set(FIELDS) - set(OPTIONAL_FIELDS))
    if extra:
        allowed = ", ".join((*FIELDS, *OPTIONAL_FIELDS))
        raise KnownIssuesError(f"{where}: unknown field(s) {', '.join(extra)} (allowed: {allowed})")
    kind = raw.get("kind", "crash")
    if kind not in KINDS:
        raise KnownIssuesError(f"{where}: kind must be one of {', '.join(KINDS)}, not {kind!r}")
    stall_classes = [STALL_PREFIX + c for c in STALL_CLASSES]
    if kind == "stall" and raw["signature"] not in stall_classes:
        raise KnownIssuesError(f"{where}: a stall's signature must be one of {', '.join(map(repr, stall_classes))}")
    if kind == "hang":
        try:
            re.compile(raw["signature"])
        except (re.error, TypeError) as exc:
            raise KnownIssuesError(f"{where}: a hang's signature must be a regular expression ({exc})") from None
    for field in ("id", "title", "signature", "reproducer", "seen"):
        if not isinstance(raw[field], str) or not raw[field].strip():
            raise KnownIssuesError(f"{where}: {field} must be a non-empty string")
    if not _ID_RE.match(raw["id"]):
        raise KnownIssuesError(f"{where}: id {raw['id']!r} must look like 'KI-1'")
    try:
        scope = known_scope.parse(raw, raw["reproducer"])
    except known_scope.ScopeError as exc:
        raise KnownIssuesError(f"{where}: {exc}") from None
    rate = raw["rate"]
    if (
        not isinstance(rate, dict)
        or set(rate) != {"hits", "tries", "per"}
        or not all(isinstance(rate[k], int) and not isinstance(rate[k], bool) for k in ("hits", "tries"))
        or not 0 < rate["hits"] <= rate["tries"]
        or not isinstance(rate["per"], str)
        or not rate["per"].strip()
    ):
        raise KnownIssuesError(
            f"{where}: rate must be {{'hits': H, 'tries': T, 'per': 'boot'}} with 0 < H <= T, not {rate!r}"
        )
    report = raw.get("report", "")
    if not isinstance(report, str) or (report and not (REPO / report).is_file()):
        raise KnownIssuesError(f"{where}: report {report!r} is not a file of the checkout")
    return KnownIssue(
        raw["id"], raw["title"], scope, raw["signature"], raw["reproducer"], Rate(**rate), raw["seen"], kind, report
    )


def parse(text: str, source: str = "known-issues.json") -> list[KnownIssue]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise KnownIssuesError(f"{source}: not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise KnownIssuesError(f"{source}: the top level must be a list of issues, not {type(data).__name__}")
    issues = []
    for i, raw in enumerate(data):
        label = raw.get("id") if isinstance(raw, dict) else None
        issues.append(_entry(f"{source}: entry {i}" + (f" ({label})" if label else ""), raw))
    ids = [k.id for k in issues]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise KnownIssuesError(f"{source}: duplicate id(s) {', '.join(duplicates)}")
    return issues


def load(path: Path = DEFAULT_PATH) -> list[KnownIssue]:
    """Read and validate the list; any problem is one clear KnownIssuesError."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise KnownIssuesError(f"cannot read known issues from {path}: {exc.strerror}") from None
    return parse(text, str(path))


def check_ids(value: str, var: str = "ISSUE", issues: Sequence[KnownIssue] | None = None) -> list[str]:
    """``ISSUE=KI-n[,KI-m]`` (what bisect-run bisects): each a listed issue, else UserError naming it."""
    listed = [i.id for i in (load() if issues is None else issues)]
    wanted = [w for w in value.replace(",", " ").split() if w]
    unknown = [w for w in wanted if w not in listed]
    if unknown:
        raise UserError(f"{var}={value}: {', '.join(unknown)} is not a known issue "
                        f"(known-issues.json lists {', '.join(listed)})")  # fmt: skip
    return wanted


def get(issue_id: str, issues: Sequence[KnownIssue]) -> KnownIssue:
    for issue in issues:
        if issue.id == issue_id:
            return issue
    raise KnownIssuesError(f"no known issue {issue_id!r} in the list ({', '.join(k.id for k in issues)})")


# -- judging -----------------------------------------------------------------------
def affects(entry: KnownIssue, version: Version | str) -> bool:
    """The issue is to be expected on ``version`` (measured there, or inferred: ``known_scope``)."""
    return entry.scope.expect(version).affected


def match_crash(text: str, issues: Sequence[KnownIssue] | None = None) -> KnownIssue | None:
    """The listed issue whose signature occurs in QEMU's stderr or a crash
    report, or in a stall's summary (``StallEvidence.describe()``), longest
    signature first, so the most specific one wins."""
    candidates = load() if issues is None else issues
    for issue in sorted(candidates, key=lambda k: len(k.signature), reverse=True):
        if issue.matches(text):
            return issue
    return None


@dataclass(frozen=True)
class Verdict:
    status: str  # Avocado's words: "PASS", "WARN" or "FAIL"
    label: str
    issue: KnownIssue  # the issue the reproducer was written for
    matched: KnownIssue | None = None  # the issue the crash matched, if any
    tries: int = 1
    miss_chance: float | None = None  # without a crash: the chance the issue is still there
    scope: str = ""  # a match's standing: "known", "outside" (what was measured) or "regression"
    why: str = ""  # for "outside" and "regression": what the entry knows instead

    @property
    def reproduced(self) -> bool:
        return self.matched is not None and self.status == "WARN"

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "label": self.label,
            "issue": self.issue.id,
            "matched": self.matched.id if self.matched else None,
            "reproduced": self.reproduced,
            "tries": self.tries,
            "miss_chance": self.miss_chance,
            "scope": self.scope or None,
        }


def _percent(chance: float) -> str:
    return f"{chance * 100:.2g} %"


def _not_seen(issue: KnownIssue, v: str, tries: int) -> Verdict:
    miss = issue.rate.miss_chance(tries)
    evidence = (
        f"did not reproduce in {tries} {issue.rate.per}{'s' if tries != 1 else ''} "
        f"(listed rate {issue.rate.describe()}: chance of a miss {_percent(miss)})"
    )
    if miss < MISS_CHANCE_FOR_FIXED:
        return Verdict("PASS", f"known issue {issue.id}, no longer reproduces on QEMU {v}: {evidence}", issue,
                       tries=tries, miss_chance=miss)  # fmt: skip
    label = f"known issue {issue.id}, not seen this run on QEMU {v}: {evidence}; not judged fixed"
    return Verdict("WARN", label, issue, tries=tries, miss_chance=miss)


def still_reproduces(issue: KnownIssue, version: str) -> str:
    kind = f" (a {issue.kind})" if issue.kind != "crash" else ""
    return f"known issue {issue.id}{kind}, still reproduces on QEMU {version}"


def standing(issue: KnownIssue, version: Version | str, test: str | None, reproducing: str = "") -> Verdict:
    """A match of ``issue``'s signature on ``version`` in ``test`` (while ``reproducing`` another
    issue, if so), judged against where the issue is known (the rules of the module's docstring):
    WARN "still reproduces" inside it, WARN that says it is outside what was measured, or FAIL
    "regression of KI-n (...)"."""
    v = format_version(version)
    expected = issue.scope.expect(version)
    if not expected.affected:
        return Verdict("FAIL", f"regression of {issue.id} ({expected.why})", issue, issue, scope="regression",
                       why=expected.why)  # fmt: skip
    outside = [] if expected.measured else [expected.why]
    if not issue.scope.has_shape(test):
        outside.append(f"this test never reproduced {issue.id} (its tests: {issue.scope.shape_names()})")
    label = still_reproduces(issue, v) + (f" (while reproducing {reproducing})" if reproducing else "")
    if not outside:
        return Verdict("WARN", label, issue, issue, scope="known")
    return Verdict("WARN", f"{label}, outside what was measured: {'; '.join(outside)}", issue, issue,
                   scope="outside", why="; ".join(outside))  # fmt: skip


def listed_failure(
    reason: str, version: Version | str, issues: Sequence[KnownIssue], test: str | None = None
) -> Verdict | None:
    """The verdict on a failure of any test whose reason line names a listed signature (WARN or
    FAIL, ``standing``), else None: the failure is new.  Exit-report-only signatures ("killed by
    SIGSEGV") are too generic to judge a test that was not written for them."""
    specific = [i for i in issues if not i.signature.startswith("killed by ")]
    matched = match_crash(reason, specific)
    return standing(matched, version, test) if matched is not None else None


def failure_facts(listed: Verdict | None) -> dict[str, Any]:
    """What a failure's whiteboard says of the listed issue it matched: ``known_issue`` only when
    it excused the failure (WARN), ``regression_of`` when it came back where it was not known."""
    if listed is None:
        return {"known_issue": None}
    if listed.status == "WARN":
        return {"known_issue": listed.issue.id, "scope": listed.scope}
    return {"known_issue": None, "regression_of": listed.issue.id}


def judge(  # noqa: PLR0913 - the outcome, and where it happened
    issue: KnownIssue,
    version: Version | str,
    crash: str | None,
    issues: Sequence[KnownIssue] | None = None,
    tries: int = 1,
    *,
    test: str | None = None,
) -> Verdict:
    """Turn a reproducer's outcome into a verdict.

    ``crash`` is None when QEMU survived all ``tries`` of the trigger (what
    a try is: ``issue.rate.per``), else QEMU's crash report
    (``Machine.exit_report()``: signal and assertion line).  ``test`` is the
    reproducer's test id (where a match is judged: ``standing``; by default
    the issue's own reproducer).
    """
    v = format_version(version)
    if crash is None:
        expected = issue.scope.expect(version)
        if expected.affected:
            return _not_seen(issue, v, tries)
        label = f"known issue {issue.id}, does not reproduce on QEMU {v} ({expected.why}; {tries} tries)"
        return Verdict("PASS", label, issue, tries=tries)
    matched = match_crash(crash, [issue, *(issues or [])])
    if matched is None:
        # ``crash`` is the failure's reason line: it names its kind (crashed, hung, device stalled)
        return Verdict("FAIL", f"NEW failure on QEMU {v}, no known signature: {crash}", issue, tries=tries)
    where = standing(matched, version, test or issue.reproducer, "" if matched.id == issue.id else issue.id)
    label = f"{where.label}: {crash}" if where.status == "FAIL" else where.label
    return Verdict(where.status, label, issue, matched, tries, scope=where.scope)
