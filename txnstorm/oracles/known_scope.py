"""Where a known issue is known: the QEMU versions it was measured on, the tests that reproduced
it, and what the public record says of its upstream fix.  ``known-issues.json`` holds, per issue::

    "measured": [{"qemu": "7.2.22", "result": "affected", "how": "12 of 27 daemons aborted"},
                 {"qemu": "10.2.2", "result": "masked", "how": "KI-10 aborts the same backup first"}],
    "shapes": ["tests/storage_daemon.py:DaemonBackupOfExportedNode.test_backup_...", ...],
    "upstream": {"status": "fixed", "commit": "9c707525cb", "subject": "nbd/server: Fix race in ...",
                 "release": "9.0.0", "backports": ["8.2.3"], "note": "not backported to 7.2.x"}

``result`` is ``affected`` (reproduced there), ``absent`` (tried there, not seen: ``how`` says how
hard) or ``masked`` (not measurable there: another fault ends the trigger first).  ``upstream``
``status`` is ``fixed`` (with the commit, its subject, the first release that has it and the stable
releases it was backported to), ``not fixed`` (the record has no fix: ``note`` says what was read)
or ``unknown`` (not looked up).

``Scope.expect(version)`` says whether the issue is to be expected on a version, and why:

1. a version measured ``affected``: expected;
2. a version measured ``absent``: not expected: its signature there is a regression;
3. a version that has the upstream fix (the fix's release or newer, or a stable release of a
   line the fix was backported to, from that backport on): not expected: a regression;
4. any other version (a user's git build, a distribution's release, a version where the issue
   was masked): the nearest measured version decides, the newest one at or below it (else the
   oldest above): ``affected`` there, expected but "not measured"; ``absent`` there, a regression.
   The issue was gone by then, so its return is what a maintainer must see.

Versions compare as numbers (7.2.22 < 8.1.0 < 10.2.2): a fix in 9.0 not backported leaves every
7.2.x without it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

Version = tuple[int, ...]
RESULTS = ("affected", "absent", "masked")
UPSTREAM_STATUSES = ("fixed", "not fixed", "unknown")


def parse_version(text: str) -> Version:
    """'7.2.22' -> (7, 2, 22); also takes QEMU's '8.2.90 (v9.0.0-rc0)' style."""
    numbers = re.findall(r"\d+", text.split(maxsplit=1)[0] if text.strip() else "")
    if not numbers:
        raise ValueError(f"not a version: {text!r}")
    return tuple(int(n) for n in numbers[:3])


def format_version(version: Version | str) -> str:
    return version if isinstance(version, str) else ".".join(str(n) for n in version)


def release_name(version: Version) -> str:
    """A release as QEMU names it: (9, 0, 0) -> '9.0', (8, 2, 3) -> '8.2.3'."""
    padded = _padded(version)
    return format_version(padded[:2] if padded[2] == 0 else padded)


def _padded(version: Version) -> Version:
    return tuple(version) + (0,) * (3 - len(version))


def as_version(version: Version | str) -> Version:
    return _padded(parse_version(version) if isinstance(version, str) else tuple(version))


@dataclass(frozen=True)
class Measured:
    """What the project measured of the issue on one QEMU version."""

    qemu: Version
    result: str  # one of RESULTS
    how: str  # the evidence, short: "11 of 11 reproducer runs aborted"


@dataclass(frozen=True)
class Upstream:
    """What the public record says of the issue's fix."""

    status: str  # one of UPSTREAM_STATUSES
    commit: str = ""
    subject: str = ""
    release: Version | None = None  # the first release with the fix
    backports: tuple[Version, ...] = ()  # stable releases that got it (their line has it from there on)
    note: str = ""

    def has_fix(self, version: Version | str) -> bool:
        if self.status != "fixed" or self.release is None:
            return False
        v = as_version(version)
        return v >= _padded(self.release) or any(v[:2] == b[:2] and v >= _padded(b) for b in self.backports)

    @property
    def fix(self) -> str:
        """'fixed in 9.0 by 9c707525cb', or '' when the record has no fix."""
        if self.status != "fixed" or self.release is None:
            return ""
        return f"fixed in {release_name(self.release)} by {self.commit}"

    def fix_in(self, version: Version | str) -> str:
        """How ``version`` has the fix ('fixed in 9.0 by 9c707525cb', '..., backported to 8.2.3'), or ''."""
        if not self.has_fix(version) or self.release is None:
            return ""
        v = as_version(version)
        if v >= _padded(self.release):
            return self.fix
        backport = max(b for b in self.backports if v[:2] == b[:2] and v >= _padded(b))
        return f"{self.fix}, backported to {release_name(backport)}"

    def describe(self) -> str:
        """The record in one line: the fix, the releases that have it, what else was read."""
        if self.status == "fixed" and self.release is not None:
            said = f'{self.fix} ("{self.subject}"); in every release from {release_name(self.release)} on'
            said += "".join(f", and {release_name(b)} on in {release_name(b[:2])}.x" for b in self.backports)
        else:
            said = "not fixed upstream" if self.status == "not fixed" else "upstream status not known"
        return f"{said}; {self.note}" if self.note else said


@dataclass(frozen=True)
class Expectation:
    """Whether an issue is to be expected on one QEMU version, and why."""

    affected: bool
    measured: bool  # that very version was measured so (not inferred from another)
    why: str  # "not seen on 10.2.2 before", "QEMU 11.1.50 not measured; affected on 10.2.2", ...


@dataclass(frozen=True)
class Scope:
    measured: tuple[Measured, ...]
    shapes: tuple[str, ...]  # test ids (file:Class.method, or file:Class for every method)
    upstream: Upstream

    def on(self, version: Version | str) -> Measured | None:
        v = as_version(version)
        return next((m for m in self.measured if _padded(m.qemu) == v), None)

    def versions(self, result: str) -> list[str]:
        return [format_version(m.qemu) for m in sorted(self.measured, key=lambda m: m.qemu) if m.result == result]

    def expect(self, version: Version | str) -> Expectation:
        """The rules of the module's docstring, in their order."""
        v, name = as_version(version), format_version(version)
        here = self.on(v)
        if here is not None and here.result == "affected":
            return Expectation(True, True, f"affected on {name}: {here.how}")
        fix = self.upstream.fix_in(v)
        if here is not None and here.result == "absent":
            return Expectation(False, True, "; ".join(filter(None, (fix, f"not seen on {name} before: {here.how}"))))
        if fix:  # masked there, or not measured: the fix decides
            return Expectation(False, here is not None, f"{fix}; not seen on {name} before")
        nearest = self._nearest(v)
        unmeasured = f"QEMU {name} not measured" + (f" ({here.how})" if here is not None else "")
        if nearest is None:
            return Expectation(True, False, unmeasured)
        near = format_version(nearest.qemu)
        if nearest.result == "affected":
            return Expectation(True, False, f"{unmeasured}; affected on {near}")
        return Expectation(False, False, f"not seen on {near} before ({nearest.how}); {unmeasured}")

    def _nearest(self, v: Version) -> Measured | None:
        judged = sorted((m for m in self.measured if m.result != "masked"), key=lambda m: _padded(m.qemu))
        below = [m for m in judged if _padded(m.qemu) <= v]
        return below[-1] if below else (judged[0] if judged else None)

    def has_shape(self, test: str | None) -> bool:
        """``test`` (an Avocado test id, with or without its ``1-`` prefix and directory) is one
        of the tests that reproduced the issue."""
        if not test:
            return False
        mine = _test_key(test)
        return any(mine == key or mine[0] == key[0] and mine[1].startswith(key[1] + ".")
                   for key in map(_test_key, self.shapes))  # fmt: skip

    def shape_names(self) -> str:
        """The tests by class ('DaemonNbdStorm, NbdAndGuestStorm'), each once."""
        return ", ".join(dict.fromkeys(_test_key(s)[1].split(".")[0] for s in self.shapes))

    def measured_line(self) -> str:
        """'7.2.22 affected; 10.0.13, 10.2.2 absent'."""
        return "; ".join(f"{', '.join(self.versions(r))} {r}" for r in RESULTS if self.versions(r))

    def describe(self) -> str:
        """One line: where it was measured, affected or not, and the upstream fix if any."""
        return "; ".join(filter(None, (self.measured_line(), self.upstream.fix)))


def _test_key(test: str) -> tuple[str, str]:
    """('file.py', 'Class.method') of a test id: a directory or Avocado's '1-' prefix is not its name."""
    path, _, name = re.sub(r"^\d+-", "", test.strip()).partition(":")
    return PurePosixPath(path).name, name


# -- loading ------------------------------------------------------------------------------
class ScopeError(ValueError):
    """The entry's scope is malformed; the text says which field."""


_VERSION_RE = re.compile(r"^\d+\.\d+\.\d+$")
_COMMIT_RE = re.compile(r"^[0-9a-f]{7,40}$")
_SHAPE_RE = re.compile(r"^[\w./-]+\.py:\w+(\.\w+)?$")


def _version(value: object, field: str) -> Version:
    if not isinstance(value, str) or not _VERSION_RE.match(value):
        raise ScopeError(f"{field} must be a version like '10.2.2', not {value!r}")
    return parse_version(value)


def _measured(raw: object) -> tuple[Measured, ...]:
    if not isinstance(raw, list) or not raw:
        raise ScopeError("measured must be a non-empty list of {'qemu': ..., 'result': ..., 'how': ...}")
    out = []
    for item in raw:
        if not isinstance(item, dict) or set(item) != {"qemu", "result", "how"}:
            raise ScopeError(f"measured: each must be {{'qemu': ..., 'result': ..., 'how': ...}}, not {item!r}")
        if item["result"] not in RESULTS:
            raise ScopeError(f"measured: result must be one of {', '.join(RESULTS)}, not {item['result']!r}")
        if not isinstance(item["how"], str) or not item["how"].strip():
            raise ScopeError(f"measured: {item['qemu']}: how must say what was seen")
        out.append(Measured(_version(item["qemu"], "measured: qemu"), item["result"], item["how"]))
    versions = [m.qemu for m in out]
    if len(set(versions)) != len(versions):
        raise ScopeError("measured: a version is listed twice")
    if not any(m.result == "affected" for m in out):
        raise ScopeError("measured: no version where it was seen (result 'affected')")
    return tuple(out)


def _upstream(raw: object) -> Upstream:
    if not isinstance(raw, dict) or raw.get("status") not in UPSTREAM_STATUSES:
        raise ScopeError(f"upstream must be an object whose status is one of {', '.join(UPSTREAM_STATUSES)}")
    extra = sorted(set(raw) - {"status", "commit", "subject", "release", "backports", "note"})
    if extra:
        raise ScopeError(f"upstream: unknown field(s) {', '.join(extra)}")
    note = raw.get("note", "")
    if not isinstance(note, str):
        raise ScopeError("upstream: note must be a string")
    if raw["status"] != "fixed":
        if set(raw) - {"status", "note"}:
            raise ScopeError(f"upstream: status {raw['status']!r} has no commit, release or backports")
        return Upstream(raw["status"], note=note)
    commit, subject = raw.get("commit"), raw.get("subject")
    if not isinstance(commit, str) or not _COMMIT_RE.match(commit):
        raise ScopeError(f"upstream: a fix needs its commit (7-40 hex digits), not {commit!r}")
    if not isinstance(subject, str) or not subject.strip():
        raise ScopeError("upstream: a fix needs its subject line")
    backports = raw.get("backports", [])
    if not isinstance(backports, list):
        raise ScopeError("upstream: backports must be a list of versions")
    return Upstream("fixed", commit, subject, _version(raw.get("release"), "upstream: release"),
                    tuple(_version(b, "upstream: backports") for b in backports), note)  # fmt: skip


def parse(raw: dict[str, object], reproducer: str) -> Scope:
    """The scope fields of one entry; ScopeError names the field that is wrong."""
    shapes = raw.get("shapes")
    if not isinstance(shapes, list) or not shapes or not all(isinstance(s, str) and _SHAPE_RE.match(s) for s in shapes):
        raise ScopeError("shapes must be a non-empty list of test ids like 'tests/x.py:Class.test_method'")
    scope = Scope(_measured(raw.get("measured")), tuple(shapes), _upstream(raw.get("upstream")))
    if not scope.has_shape(reproducer):
        raise ScopeError(f"shapes must name the reproducer {reproducer}")
    return scope
