"""Every setting a user gives txnstorm through the environment, read in one place.

Each process reads them once with ``Settings.from_env()`` and hands the ``Settings`` (or its
``cache_dir``) down: every runner process (the CLI, bench, reliability, deaths,
``scripts/storm-stop-repro``) in ``txnstorm.runner.entry.run``, a scenario test's process in its
set-up (Avocado's ``-p`` parameters given on top: ``Settings.given``), ``make inputs`` to check them
(``tests/unit/test_settings.py``); no module below the scenario layer reads ``os.environ``
(``tests/unit/test_layers.py``).  Standard library only: the input check imports it
before the virtualenv exists.

Every setting, make's and the environment's, is declared once, in ``SETTINGS``: its name and aliases,
how it is checked, its default, its help line and the make targets that read it.  From it follow the
input check (``txnstorm.runner.inputs``: unknown names, empty values, each kind's check),
``make help``'s settings (``python3 -m txnstorm.settings``) and docs/running.md's table
(``python3 -m txnstorm.settings --doc``; tests/unit/test_settings.py keeps them in step).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from txnstorm.errors import UserError

QMP_ANSWER_S = 60.0  # a QEMU that answers no QMP command within this is hung (a FAIL of that QEMU)
ACCEL_CHOICES = ("auto", "kvm", "tcg")  # ACCEL=: auto probes KVM with a real boot, then falls back to TCG
BOOT_CHOICES = ("restore", "cold")
MUTANTS_PEERS = ("suite", "iotests")  # MUTANTS_PEER=: who judges make mutants' mutants
# The make targets, by what they read (``all`` is ``check``; ``inputs`` reads every setting).
SCENARIOS = ("quick", "run", "ci", "check", "all", "scenarios", "replay-test")  # one Avocado job
QEMU_UNDER_TEST = (*SCENARIOS, "preflight", "nightly", "bench", "reliability", "deaths")
SUITE = (*QEMU_UNDER_TEST, "teeth", "validate", "coverage", "mutants")  # everything that boots a guest
BUILDS = ("qemu", "teeth", "validate")  # everything that runs scripts/build-qemu on a source of the user's choice
OWN_BUILDS = ("coverage", "coverage-iotests", "mutants")  # build-qemu of make qemu's 10.2.2 source, kept dirs
CACHE_USERS = (*SUITE, "guest", "qemu", "unit", "coverage-iotests")


@dataclass(frozen=True)
class Setting:
    """One setting: its name (make's variable, and the environment's when ``env``), the names it
    also answers to, how the input check reads it (``kind``: ``txnstorm.runner.inputs.KINDS``),
    what an unset one means, ``make help``'s line, and the make targets that read it."""

    name: str
    kind: str
    example: str  # what follows NAME= in make help
    help: str
    targets: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    default: str = ""  # what leaving it out means ("" : nothing, said in help)
    empty_means: str = ""  # what NAME= (empty) means where that is a choice; else an empty one is an error
    env: bool = False  # read from the environment by the CLI and the tests, not only by make

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


SETTINGS: tuple[Setting, ...] = (
    Setting("QEMU", "qemu", "path", "qemu-system-x86_64 or a QEMU build dir", QEMU_UNDER_TEST,
            ("QEMU_TEST_QEMU_BINARY", "QEMU_PROG"), "Debian's qemu-system-x86_64", env=True),
    Setting("QEMU_IMG", "qemu_img", "path", "qemu-img", QEMU_UNDER_TEST, ("QEMU_TEST_QEMU_IMG", "QEMU_IMG_PROG"),
            "the one beside QEMU, else Debian's", env=True),
    Setting("ACCEL", "accel", "auto|kvm|tcg", "auto probes KVM and falls back to TCG, saying why", SUITE,
            default="auto", env=True),
    Setting("TEST", "text", '"name ..."', "only these tests: an id or a piece of one (test_multiqueue, Rollback)",
            (*SCENARIOS, "validate"), default="every test of TAGS"),
    Setting("TAGS", "tags", '"quick,-control nbd"', "tag filters: comma = AND, space = OR, -tag = NOT",
            (*SCENARIOS, "validate", "coverage", "mutants"), default="the target's tier", empty_means="every test"),
    Setting("SEED", "seed", "N", "every test with this seed (a report prints it)", (*SCENARIOS, "validate"),
            default="a fresh seed per test"),
    Setting("FAILFAST", "switch", "1", "stop at the first test that does not pass (make teeth: in a fault's row)",
            (*SCENARIOS, "teeth"), default="0"),
    Setting("JOBS", "jobs", "N|auto", "scenario tests side by side (auto: one per core)",
            (*SCENARIOS, "teeth", "coverage", "mutants"),
            default="auto"),
    Setting("SHARD", "shard", "i/N", "shard i of N of the selected tests (CI)", SCENARIOS, default="1/1"),
    Setting("DURATION", "duration", "2h", "make nightly's budget", ("nightly",), default="10m"),
    Setting("NIGHTLY_TAGS", "tags", "...", "make nightly's tag filters", ("nightly",), default="every test",
            empty_means="every test"),
    Setting("NIGHTLY_QEMUS", "qemus", '"7.2.22 10.2.2 ~/qemu/build"', "make nightly's QEMUs, exactly these",
            ("nightly",), default="QEMU and every make qemu build"),
    Setting("TEETH_TAGS", "tags", "quick", "make teeth's tier", ("teeth",), default="quick"),
    Setting("TEETH_QEMUS", "teeth_versions", '"7.2.22 10.2.2"', "make teeth's QEMU versions", ("teeth",),
            default="Debian 12's and every make qemu source"),
    Setting("TEETH_FAULTS", "text", '"classes"|"real"|name ...', "make teeth's faults: the written classes, the "
            "real upstream bugs, or teeth/ folder names", ("teeth",), default="every fault of teeth/"),
    Setting("TEETH_PEER", "switch", "1", "make teeth: QEMU's own iotests of the area on every build too (the "
            "peer row)", ("teeth",), default="0"),
    Setting("SERIES", "text", "dir|mbox", "make validate: the series (git format-patch dir, b4 mbox, a patch)",
            ("validate",)),
    Setting("BASE", "text", "10.2.2|tree", "make validate: its base (a make qemu version or a QEMU tree)",
            ("validate",)),
    Setting("RUNS", "count", "N", "make validate: runs per side (3); make reliability: runs (20)",
            ("validate", "reliability")),
    Setting("JUDGE", "text", "results/validate-...", "make validate: judge those runs again", ("validate",)),
    Setting("BASELINE", "revision", "rev", "make bench: the round cadence against this revision", ("bench",)),
    Setting("PAIRS", "count", "N", "make bench BASELINE=...: runs of each side", ("bench",), default="2"),
    Setting("LOAD", "count0", "N", "make reliability: CPU hogs beside the runs", ("reliability",), default="0"),
    Setting("INTERRUPTS", "count0", "N", "make reliability: runs interrupted with Ctrl-C", ("reliability",),
            default="3"),
    Setting("IOTESTS", "text", '"055 141 qsd-jobs"', "make coverage-iotests: these of QEMU's iotests",
            ("coverage-iotests",), default="the block layer's (docs/teeth.md)"),
    Setting("MUTANTS", "text", '"block/io.c step"', "make mutants: only the mutants whose id has one of these",
            ("mutants",), default="every mutant"),
    Setting("MUTANTS_SHARD", "shard", "i/N", "make mutants: shard i of N of the mutants", ("mutants",),
            default="1/1"),
    Setting("MUTANTS_LIMIT", "count", "N", "make mutants: the first N (after MUTANTS and the shard)", ("mutants",),
            default="every one"),
    Setting("MUTANTS_LIST", "switch", "1", "make mutants: list the mutants' ids, build and run nothing",
            ("mutants",), default="0"),
    Setting("MUTANTS_UNREACHED", "switch", "1", "make mutants: run the mutants make coverage never reached too",
            ("mutants",), default="0"),
    Setting("MUTANTS_SUM", "switch", "1", "make mutants: one table and score of every shard run so far (of the tier, "
            "or MUTANTS_PEER's), build and run nothing", ("mutants",), default="0"),
    Setting("MUTANTS_PEER", "mutants_peer", "suite|iotests", "make mutants: judged by the tier, or by QEMU's "
            "iotests of the area (make coverage-iotests's)", ("mutants",), default="suite"),
    Setting("RESULTS_DIR", "text", "dir", "make replay: the job dir", ("replay",), default="results/latest"),
    Setting("QEMU_SRC", "text", "~/qemu", "make qemu: build this QEMU tree", ("qemu",),
            default="Debian's source", empty_means="Debian's source"),
    Setting("QEMU_DEB_SUITE", "text", "sid", "make qemu: the Debian suite of the source", BUILDS, default="trixie"),
    Setting("QEMU_DEB_VERSION", "text", "1:10.0.13+ds-0+deb13u1", "make qemu: that Debian source version",
            BUILDS, default="the newest that downloads"),
    Setting("QEMU_CONFIGURE_EXTRA", "text", '"--enable-..."', "make qemu: more configure flags", BUILDS),
    Setting("QEMU_BUILD_JOBS", "count", "N", "make qemu: compile jobs", (*BUILDS, *OWN_BUILDS), default="2"),
    Setting("QEMU_CCACHE", "switch", "0", "make qemu: 0 compiles without the compiler cache", BUILDS, default="1"),
    Setting("QEMU_CCACHE_DIR", "text", "dir", "make qemu: the compiler cache", BUILDS,
            default="$TXNSTORM_CACHE/ccache"),
    Setting("UNIT_JOBS", "count0", "N", "make unit's pytest workers (0: one process)", ("unit", "check", "all"),
            default="4"),
    Setting("TXNSTORM_CACHE", "cache", "dir", "the guest and QEMU cache", CACHE_USERS,
            default="~/.cache/txnstorm", env=True),
    Setting("TXNSTORM_BOOT", "boot", "cold", "boot every guest (restore: load a saved guest of the same shape)",
            SUITE, default="restore", env=True),
    Setting("TXNSTORM_QMP_ANSWER_S", "qmp_seconds", "N",
            "seconds a QMP command may go unanswered before QEMU is hung", SUITE, default="60", env=True),
    Setting("TXNSTORM_SEED", "seed", "N", "every test's seed (SEED's name in the environment)", SUITE, env=True),
    Setting("TXNSTORM_QEMU_TRACE", "text", '"virtio_notify*,..."', "QEMU trace events into each qemu-trace.log",
            SUITE, env=True),
    Setting("TXNSTORM_KEEP_CORES", "switch", "1", "keep a crashed QEMU's core beside its backtrace", SUITE,
            default="0", env=True),
)  # fmt: skip
BY_NAME = {name: s for s in SETTINGS for name in s.names}
ALIASES = {s.name: s.aliases for s in SETTINGS if s.aliases}  # QEMU's functional tests' and iotests' names


def empty_error(name: str) -> UserError:
    """``NAME=`` given empty, where empty is no choice: not the default, an error."""
    setting = BY_NAME[name]
    leave = f" or leave it out for the default ({setting.default})" if setting.default else ""
    return UserError(f"{name}= is empty; give {name}={setting.example} ({setting.help}){leave}")


def closest(name: str) -> str | None:
    """The setting a mistyped name meant: a near spelling (QEMU_IMAGE: QEMU_IMG), else the longest
    setting it starts with (QEMU_BIN: QEMU), else a looser spelling."""
    wanted = name.upper()
    near = difflib.get_close_matches(wanted, BY_NAME, n=1, cutoff=0.85)
    starts = sorted((n for n in BY_NAME if wanted.startswith(n + "_")), key=len, reverse=True)
    loose = difflib.get_close_matches(wanted, BY_NAME, n=1, cutoff=0.6)
    return (near or starts or loose or [None])[0]


def unknown_error(name: str, value: str) -> UserError:
    """A make variable no setting is called: the closest name, if any."""
    meant = closest(name)
    hint = f"did you mean {meant}?" if meant else "make help lists every setting"
    return UserError(f"{name}={value}: unknown setting; {hint}")


def unread_error(name: str, value: str, goals: Sequence[str]) -> UserError:
    """A setting none of the make targets asked for reads: it would be ignored."""
    readers = [t for t in BY_NAME[name].targets if t not in ("all", "scenarios", "replay-test")]
    return UserError(f"{name}={value}: make {' '.join(goals)} does not read it "
                     f"(read by make {', '.join(readers)})")  # fmt: skip


def command_line_problems(given: Mapping[str, str], goals: Sequence[str], every: bool = False) -> list:
    """Make's command-line assignments (name -> value) for ``goals``: each unknown name, each
    setting no goal reads, each empty one where empty is no choice (``every``: None for each
    name that is fine, in ``given``'s order)."""
    found: list[UserError | None] = []
    for name, value in given.items():
        setting = BY_NAME.get(name)
        if setting is None:
            found.append(unknown_error(name, value))
        elif "inputs" not in goals and not set(goals) & set(setting.targets):
            found.append(unread_error(name, value, goals))
        elif not value.strip() and not setting.empty_means:
            found.append(empty_error(name))
        else:
            found.append(None)
    return found if every else [f for f in found if f is not None]


def help_lines() -> list[str]:
    """``make help``'s settings: one line each, from ``SETTINGS``."""
    lines = []
    for s in SETTINGS:
        left = f"{s.name}={s.example}"
        also = f"; or {', '.join(s.aliases)}" if s.aliases else ""
        default = f" (default: {s.default})" if s.default else ""
        lines.append(f"  {left:22} {s.help}{default}{also}"[:200])
    return lines


def doc_table() -> str:
    """docs/running.md's settings table, from ``SETTINGS`` (tests/unit/test_settings.py keeps it so)."""
    rows = ["| setting | what | default | read by |", "|---|---|---|---|"]
    for s in SETTINGS:
        names = " ".join(f"`{n}`" for n in s.names)
        readers = ", ".join(t for t in s.targets if t not in ("all", "scenarios", "replay-test"))
        cells = (f"{names}=`{s.example}`", s.help, s.default or "-", readers)
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows) + "\n"


def named(env: Mapping[str, str], var: str) -> tuple[str, str | None]:
    """(the variable the user set, its value): ``var`` or one of its aliases; two different values
    are an error, and so is one given empty."""
    given = [(n, env[n]) for n in (var, *ALIASES.get(var, ())) if n in env]
    for name, value in given:
        if not value.strip():
            raise empty_error(name)
    for (one, first), (other, second) in zip(given, given[1:], strict=False):
        if first != second:
            raise UserError(f"{one}={first} and {other}={second} disagree; set one of them")
    return given[0] if given else (var, None)


def check_empty(env: Mapping[str, str]) -> None:
    """A setting the environment gives empty (``QEMU= scripts/txnstorm run``) is an error, not its default."""
    for s in SETTINGS:
        for name in s.names:
            if s.env and name in env and not env[name].strip() and not s.empty_means:
                raise empty_error(name)


def default_cache_dir(env: Mapping[str, str]) -> Path:
    if env.get("TXNSTORM_CACHE"):
        return Path(env["TXNSTORM_CACHE"]).expanduser()
    return Path(env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")) / "txnstorm"


@dataclass(frozen=True)
class Settings:
    """The user's settings (the table in this module's docstring)."""

    qemu: str | None = None
    qemu_var: str = "QEMU"  # the variable that named it (QEMU or QEMU_TEST_QEMU_BINARY), for messages
    qemu_img: str | None = None
    qemu_img_var: str = "QEMU_IMG"
    accel: str = "auto"
    seed: str | None = None
    cache_dir: Path = field(default_factory=lambda: default_cache_dir({}))
    qemu_trace: tuple[str, ...] = ()
    keep_cores: bool = False
    qmp_answer_s: float = QMP_ANSWER_S
    restore_guests: bool = True  # TXNSTORM_BOOT=restore (default) or cold

    def given(self, *, qemu: str | None = None, qemu_img: str | None = None, accel: str | None = None,
              by: str, img_by: str = "") -> Settings:  # fmt: skip
        """These settings with what a command gave over the environment's (Avocado's ``-p qemu=``, a
        script's ``--qemu``, validate's build of a series).  A value that differs is named in messages
        as a variable is: ``by`` (``-p qemu``), its qemu-img ``img_by`` (default ``by`` + ``_img``).  A
        QEMU given without its qemu-img keeps QEMU_IMG's, or the one beside it (``host.sut``)."""
        changes: dict[str, object] = {}
        if qemu is not None and qemu != self.qemu:
            changes.update(qemu=qemu, qemu_var=by)
        if qemu_img is not None and qemu_img != self.qemu_img:
            changes.update(qemu_img=qemu_img, qemu_img_var=img_by or f"{by}_img")
        if accel is not None:
            changes.update(accel=accel)
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        check_empty(env)
        (qemu_var, qemu), (img_var, qemu_img) = named(env, "QEMU"), named(env, "QEMU_IMG")
        return cls(
            qemu=qemu, qemu_var=qemu_var, qemu_img=qemu_img, qemu_img_var=img_var,
            accel=env.get("ACCEL") or "auto", seed=env.get("TXNSTORM_SEED") or None,
            cache_dir=default_cache_dir(env),
            qemu_trace=tuple(p.strip() for p in env.get("TXNSTORM_QEMU_TRACE", "").split(",") if p.strip()),
            keep_cores=env.get("TXNSTORM_KEEP_CORES") == "1",
            qmp_answer_s=qmp_answer_seconds(env.get("TXNSTORM_QMP_ANSWER_S", "")),
            restore_guests=boot_choice(env.get("TXNSTORM_BOOT", "")) == "restore",
        )  # fmt: skip


def qmp_answer_seconds(value: str) -> float:
    """``TXNSTORM_QMP_ANSWER_S``: empty is the default; else a number of seconds from 5 up."""
    if not value.strip():
        return QMP_ANSWER_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not 5 <= seconds <= 3600:
        raise UserError(f"TXNSTORM_QMP_ANSWER_S={value} is not a number of seconds from 5 to 3600 "
                        f"(default {QMP_ANSWER_S:.0f}; e.g. TXNSTORM_QMP_ANSWER_S=120 on a very slow host)")
    return seconds



def boot_choice(value: str) -> str:
    """``TXNSTORM_BOOT``: restore (the default) or cold."""
    choice = value.strip().lower() or "restore"
    if choice not in BOOT_CHOICES:
        raise UserError(f"TXNSTORM_BOOT={value} is not one of {', '.join(BOOT_CHOICES)} "
                        "(restore: load a saved guest where one fits, the default; cold: boot every guest)")
    return choice


def main(argv: Sequence[str]) -> int:
    """``make help``'s settings lines, or (``--doc``) docs/running.md's table."""
    print(doc_table() if "--doc" in argv else "\n".join(help_lines()), end="" if "--doc" in argv else "\n")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
