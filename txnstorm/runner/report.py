"""An HTML page per Avocado job, laid out for triage: what failed, on which
QEMU, why, how to replay it, and the evidence, in that order.

The header names the QEMU(s) under test with their paths, the accelerator
and why it was chosen, the txnstorm commit, the host, the job and the
totals.  Then failures (FAIL, ERROR, INTERRUPTED), each with its reason
line, QEMU's assertion line, the replay command, the oracle's violations,
an excerpt of the backtrace and a direct link to every log file; then known
issues (WARN); then the passes, collapsed.  Per test, the timeline picture:
storm throughput per disk over time (from QEMU's own write counters), with
the moment each transaction fired, was answered and its jobs completed.  In
a negative control a caught violation reads "caught (expected)".
Self-contained (inline SVG, no scripts), so it opens from a CI artifact.
"""

from __future__ import annotations

import html
import json
import math
import os
import platform
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from txnstorm import REPO
from txnstorm.errors import UserError
from txnstorm.oracles import known_issues
from txnstorm.runner import runs
from txnstorm.vm.backtrace import IDLE_MAIN_LOOP, main_thread_site

TEMPLATES = Path(__file__).parent / "templates"
FAILED = ("FAIL", "ERROR", "INTERRUPTED")
# The log files a failure is diagnosed from, in the order a maintainer opens them.
EVIDENCE_FILES = (
    "qemu-stderr.log", "qmp.log", "console.log", "oracle.log", "stall.json", "virtqueues.json",
    "qemu-crash-backtrace.txt", "qemu-backtrace.txt", "timeline.json", "qemu-cmdline.txt", "qemu-trace.log",
    "debug.log",
)  # fmt: skip
EVIDENCE_GLOBS = ("fio-*.json", "fio-*-hung.txt")
PROCESS_DIRS = ("daemon",)  # another QEMU process's logs, beside the guest's (tests/vhost_user_blk.py)
PROCESS_FILES = ("guest-diagnosis.txt",)
BACKTRACE_LINES = 12


def rates(samples: Sequence[dict[str, float]]) -> dict[str, list[tuple[float, float]]]:
    """Writes per second per disk between consecutive counter readings."""
    series: dict[str, list[tuple[float, float]]] = {}
    for prev, cur in zip(samples, samples[1:], strict=False):
        dt = cur["t"] - prev["t"]
        if dt <= 0:
            continue
        for disk in cur:
            if disk != "t" and disk in prev:
                series.setdefault(disk, []).append((cur["t"], max(0.0, (cur[disk] - prev[disk]) / dt)))
    return series


DISK_COLORS = ["#1f77b4", "#9467bd", "#17becf", "#8c564b", "#7f7f7f"]  # disks: blues, purple, brown, grey
# Transaction marks: warm colours, dashed, so no mark reads as a disk.
MARKS = {"firing": ("#ff7f0e", "6,3"), "answered": ("#d62728", "2,2"), "jobs completed": ("#2ca02c", "8,2,2,2"),
         "stalled": ("#000000", "1,0")}  # fmt: skip
CHAR_W = 6.6  # px per character at font-size 11, for laying out the legend without overlap


def nice_step(span: float, ticks: int = 6) -> float:
    """A 1/2/5 x 10^n step that cuts ``span`` into about ``ticks`` parts."""
    raw = max(span, 1e-9) / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)


def _tick_label(value: float, step: float) -> str:
    return f"{value:.0f}" if step >= 1 else f"{value:.1f}"


def svg_timeline(timeline: dict[str, Any] | list[Any], width: int = 900, height: int = 260) -> str:
    """Writes/s per disk against seconds since the storm started (QEMU's counters), with a dashed
    vertical mark for each moment a transaction fired, was answered and its jobs completed.  The
    legend sits above the plot, laid out by text width, so it never covers a line."""
    if isinstance(timeline, list):  # timeline.json before write counters were kept
        timeline = {"events": timeline}
    samples, events = timeline.get("write_ops", []), timeline.get("events", [])
    t0 = next((e["t"] for e in events if e.get("what") == "storm started"), None)
    if t0 is None:
        t0 = min([s["t"] for s in samples] + [e["t"] for e in events] + [0.0])
    samples = [s for s in samples if s["t"] >= t0]
    events = [e for e in events if e["t"] >= t0]
    series = rates(samples)
    pad_l, pad_r, pad_t, pad_b = 64, 16, 34, 42
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    t_span = max([s["t"] - t0 for s in samples] + [e["t"] - t0 for e in events] + [1.0])
    y_top = max([r for pts in series.values() for _, r in pts] + [1.0])
    x_step, y_step = nice_step(t_span), nice_step(y_top, 4)
    t_span, y_top = math.ceil(t_span / x_step) * x_step, math.ceil(y_top / y_step) * y_step

    def x(t: float) -> float:
        return pad_l + plot_w * (t - t0) / t_span

    def y(v: float) -> float:
        return pad_t + plot_h - plot_h * v / y_top

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" class="timeline" font-size="11">',
        f'<rect x="{pad_l}" y="{pad_t}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#999"/>',
    ]
    for i in range(round(t_span / x_step) + 1):
        xt = pad_l + plot_w * i * x_step / t_span
        parts.append(f'<line x1="{xt:.1f}" y1="{pad_t + plot_h}" x2="{xt:.1f}" y2="{pad_t + plot_h + 4}" '
                     f'stroke="#555" class="xtick"/><text x="{xt:.1f}" y="{pad_t + plot_h + 15}" '
                     f'text-anchor="middle">{_tick_label(i * x_step, x_step)}</text>')  # fmt: skip
    for i in range(round(y_top / y_step) + 1):
        yt = y(i * y_step)
        parts.append(f'<line x1="{pad_l - 4}" y1="{yt:.1f}" x2="{pad_l + plot_w}" y2="{yt:.1f}" stroke="#e4e4e4" '
                     f'class="ytick"/><text x="{pad_l - 6}" y="{yt + 4:.1f}" text-anchor="end">'
                     f"{_tick_label(i * y_step, y_step)}</text>")  # fmt: skip
    parts.append(f'<text x="{pad_l + plot_w / 2:.0f}" y="{height - 6}" text-anchor="middle">'
                 "seconds since the storm started</text>")  # fmt: skip
    parts.append(f'<text transform="translate(12,{pad_t + plot_h / 2:.0f}) rotate(-90)" text-anchor="middle">'
                 "writes/s</text>")  # fmt: skip
    for event in events:
        what = str(event.get("what", ""))
        mark = next((m for k, m in MARKS.items() if k in what), None)
        if mark is None:
            continue
        color, dash = mark
        xe = x(event["t"])
        title = html.escape(f"{event['t'] - t0:.3f} s: {what}")
        parts.append(
            f'<line x1="{xe:.1f}" y1="{pad_t}" x2="{xe:.1f}" y2="{pad_t + plot_h}" stroke="{color}" '
            f'stroke-width="1.2" stroke-dasharray="{dash}" class="mark"><title>{title}</title></line>'
        )
    legend: list[tuple[str, str, str]] = []  # (label, colour, dash or "" for a disk)
    for i, (disk, pts) in enumerate(sorted(series.items())):
        color = DISK_COLORS[i % len(DISK_COLORS)]
        points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{points}" class="disk"/>')
        legend.append((disk, color, ""))
    legend += [(k, c, d) for k, (c, d) in MARKS.items() if any(k in str(e.get("what", "")) for e in events)]
    lx = pad_l
    for label, color, dash in legend:
        style = f'stroke-dasharray="{dash}" stroke-width="1.5"' if dash else 'stroke-width="2.5"'
        parts.append(f'<line x1="{lx}" y1="14" x2="{lx + 18}" y2="14" stroke="{color}" {style} class="legend"/>'
                     f'<text x="{lx + 22}" y="18">{html.escape(label)}</text>')  # fmt: skip
        lx += 22 + CHAR_W * len(label) + 14
    parts.append("</svg>")
    return "\n".join(parts)


def _reason(test: dict[str, Any]) -> str:
    return "" if test.get("status") == "PASS" else str(test.get("fail_reason") or "")


def _known_issue_label(test: dict[str, Any]) -> str:
    """A reproducer's verdict ("known issue KI-n, still reproduces on QEMU x")."""
    board = runs.whiteboard(test)
    nested = board.get("known_issue") if isinstance(board.get("known_issue"), dict) else {}
    return str(nested.get("label") or board.get("label") or test.get("fail_reason") or test.get("name", "?"))


def _commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10, check=False)  # fmt: skip
    except OSError:
        return "?"
    return out.stdout.strip() or "?"


def evidence_files(logdir: Path) -> list[Path]:
    """The log files of a test dir that exist, in the order of EVIDENCE_FILES; then those of the
    other processes it ran (``daemon/``: a qemu-storage-daemon under a guest)."""
    found = [logdir / name for name in EVIDENCE_FILES if (logdir / name).is_file()]
    for pattern in EVIDENCE_GLOBS:
        found += sorted(logdir.glob(pattern))
    for sub in PROCESS_DIRS:
        found += [logdir / sub / name for name in (*EVIDENCE_FILES, *PROCESS_FILES) if (logdir / sub / name).is_file()]
    return found


def assertion_line(logdir: Path) -> str:
    """QEMU's last assertion or fatal line from its stderr, if any."""
    path = logdir / "qemu-stderr.log"
    if not path.is_file():
        return ""
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if re.search(r"Assertion|assert|fatal|BUG", ln)]
    return lines[-1].strip() if lines else ""


def backtraces(logdir: Path) -> list[Path]:
    """The backtraces a failure left, the one to show first: a crash's (the guest's QEMU, then
    another process's), then a hang's whose main thread was not idle in its main loop."""
    dirs = [logdir, *(logdir / sub for sub in PROCESS_DIRS)]
    crashes = [d / "qemu-crash-backtrace.txt" for d in dirs if (d / "qemu-crash-backtrace.txt").is_file()]
    hangs = [d / "qemu-backtrace.txt" for d in dirs if (d / "qemu-backtrace.txt").is_file()]
    busy = sorted(hangs, key=lambda h: main_thread_site(h.read_text(errors="replace")) == IDLE_MAIN_LOOP)
    return crashes + busy  # (sorted is stable: the guest's QEMU first among equals)


def backtrace_excerpt(logdir: Path) -> str:
    """The first frames of the thread that crashed (or of thread 1 of a hang)."""
    for path in backtraces(logdir):
        name = str(path.relative_to(logdir))
        lines = path.read_text(errors="replace").splitlines()
        start = next((i for i, ln in enumerate(lines) if ln.startswith("Thread 1 ")), None)
        if start is None:
            start = next((i for i, ln in enumerate(lines) if ln.startswith("#0")), 0)
        frames = [ln for ln in lines[start:] if ln.startswith(("Thread", "#"))][: BACKTRACE_LINES + 1]
        return f"{name}:\n" + "\n".join(frames)
    return ""


def oracle_lines(logdir: Path, control: bool) -> list[str]:
    """oracle.log, with a negative control's caught violations read as expected."""
    path = logdir / "oracle.log"
    if not path.is_file():
        return []
    lines = path.read_text(errors="replace").splitlines()
    return [ln.replace(": VIOLATION:", ": caught (expected):") for ln in lines] if control else lines


_PAIR_RE = re.compile(r"VIOLATION: (\S+) vs (\S+): first difference")


def compare_commands(logdir: Path, violations: Sequence[str], qemu_img: str = "qemu-img") -> list[str]:
    """``qemu-img compare`` of the kept images of each violated same-instant pair (oracle.log names them
    as in the test's scratch dir; an internal snapshot ``disk.qcow2@snap`` was extracted to
    ``disk@snap.qcow2``), so a maintainer re-checks the verdict by hand."""
    scratch, commands = logdir / "scratch", []
    for line in violations:
        match = _PAIR_RE.search(line)
        if not match:
            continue
        files = []
        for name in match.groups():
            image, _, snapshot = name.partition("@")
            path = scratch / (f"{Path(image).stem}@{snapshot}.qcow2" if snapshot else image)
            files.append(path)
        if all(f.is_file() for f in files):
            fmts = ["raw" if f.suffix == ".raw" else "qcow2" for f in files]
            command = f"{qemu_img} compare -f {fmts[0]} -F {fmts[1]} {files[0]} {files[1]}"
            if command not in commands:
                commands.append(command)
    return commands


def known_issue_of(test: dict[str, Any]) -> dict[str, str] | None:
    """The listed issue a WARN met: id, title and its report's path in the checkout (if it has one)."""
    board = runs.whiteboard(test)
    nested = board.get("known_issue") if isinstance(board.get("known_issue"), dict) else {}
    failure = board.get("failure") if isinstance(board.get("failure"), dict) else {}
    found = re.search(r"\bKI-\d+\b", str(test.get("fail_reason") or ""))
    issue_id = nested.get("matched") or nested.get("issue") or failure.get("known_issue") or (found and found[0])
    if not issue_id:
        return None
    try:
        entry = known_issues.get(str(issue_id), known_issues.load())
    except UserError:
        return {"id": str(issue_id), "title": "", "report": "", "href": ""}
    return {"id": entry.id, "title": entry.title, "report": entry.report, "href": ""}


def _logs(job_dir: Path, logdir: Path) -> list[tuple[str, str]]:
    """(name, href relative to the job dir) for every log file, then the dir itself."""

    def rel(path: Path) -> str:
        return str(path.relative_to(job_dir) if path.is_relative_to(job_dir) else path)

    return [(str(p.relative_to(logdir)), rel(p)) for p in evidence_files(logdir)] + [("(the whole dir)", rel(logdir))]


def view_of(job_dir: Path, test: dict[str, Any]) -> dict[str, Any]:
    """What the page shows of one test (the template escapes every string; the picture is our SVG)."""
    board = runs.whiteboard(test)
    status = str(test.get("status", "?"))
    logdir = Path(test.get("logdir", "") or "/nonexistent")
    control = "control" in (test.get("tags") or {})
    failed = status in FAILED
    oracle = oracle_lines(logdir, control)
    violations = [ln for ln in oracle if "VIOLATION" in ln] if failed else []
    issue = known_issue_of(test) if status == "WARN" else None
    if issue and issue["report"]:
        report_path = REPO / issue["report"]
        issue["href"] = os.path.relpath(report_path, job_dir)
    picture = ""
    if (logdir / "timeline.json").is_file():
        picture = svg_timeline(json.loads((logdir / "timeline.json").read_text()))
    return {
        "id": test.get("id", ""), "name": test.get("name", "?"), "status": status,
        "seed": board.get("seed", "?"), "qemu": board.get("qemu", "?"), "accel": board.get("accel", "?"),
        "seconds": float(test.get("time_elapsed") or 0),
        "reason": _known_issue_label(test) if status == "WARN" else _reason(test) if failed else "",
        "assertion": assertion_line(logdir) if failed else "",
        "noticed_by": _noticed_by(board) if failed or status == "WARN" else "",
        "replay": runs.replay_command(test) if failed else "",
        "bisect": runs.bisect_command(test) if status == "FAIL" else "",
        "violations": violations[:10],
        "more_violations": max(0, len(violations) - 10),
        "compare": compare_commands(logdir, violations, str(board.get("qemu_img_path") or "qemu-img"))[:3],
        "issue": issue,
        "backtrace": backtrace_excerpt(logdir) if failed else "",
        "logs": _logs(job_dir, logdir) if logdir.is_dir() else [],
        "picture": Markup(picture),  # noqa: S704 - built by svg_timeline, which escapes every text it holds
        "oracle": oracle,
    }  # fmt: skip


def _noticed_by(board: dict[str, Any]) -> str:
    """What met a dead or hung QEMU first, when it was not QMP (SSH, an NBD client, fio): the
    evidence the verdict keeps under QEMU's death (``harness.qemu_failed``)."""
    failure = board.get("failure") if isinstance(board.get("failure"), dict) else {}
    return str(failure.get("noticed_by") or "")


def _header(job_dir: Path, data: dict[str, Any], tests: list[dict[str, Any]]) -> list[tuple[str, str]]:
    qemus: dict[str, str] = {}
    accels: set[str] = set()
    for test in tests:
        board = runs.whiteboard(test)
        if board.get("qemu"):
            qemus.setdefault(str(board["qemu"]), str(board.get("qemu_path", "")))
        if board.get("accel"):
            accels.add(f"{board['accel']} ({board['accel_reason']})" if board.get("accel_reason") else board["accel"])
    counts: dict[str, int] = {}
    for test in tests:
        counts[test.get("status", "?")] = counts.get(test.get("status", "?"), 0) + 1
    about, not_run = runs.run_about(job_dir), runs.not_run(job_dir)
    seconds = about.get("seconds") or data.get("time") or sum(float(t.get("time_elapsed") or 0) for t in tests)
    asked = [f"TAGS={about.get('tags') or '(every test)'}", f"SHARD={about.get('shard') or '1/1'}"]
    asked += [f"TEST={' '.join(map(str, about['tests']))}"] if about.get("tests") else []
    asked += [f"SEED={about['seed']}"] if about.get("seed") else []
    asked += ["FAILFAST=1"] if about.get("failfast") else []
    asked += [f"JOBS={about['jobs']}"] if isinstance(about.get("jobs"), int) and about["jobs"] > 1 else []
    return [
        ("QEMU", "; ".join(f"{v} ({p})" if p else v for v, p in sorted(qemus.items())) or "?"),
        ("accelerator", "; ".join(sorted(accels)) or "?"), ("txnstorm", _commit()), ("host", platform.node()),
        ("job", f"{data.get('job_id', '?')} ({job_dir})"),
        ("run", " ".join(asked) if about else "(not run by scripts/txnstorm run: no TAGS/SHARD recorded)"),
        ("duration", f"{float(seconds):.0f} s"),
        ("totals", ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
         + (f", {not_run} not run (FAILFAST stopped the job)" if not_run else "")),
    ]  # fmt: skip


def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )  # fmt: skip


def _css() -> Markup:
    return Markup((TEMPLATES / "base.css").read_text())  # noqa: S704 - our own stylesheet


def render_job(job_dir: Path) -> Path:
    """Write ``report.html`` into an Avocado job results dir; return its path."""
    job_dir = Path(job_dir).resolve()
    try:
        data = json.loads((job_dir / "results.json").read_text())
    except (OSError, ValueError):
        raise UserError(f"{job_dir} has no readable results.json; give an Avocado job results dir") from None
    tests = data.get("tests", [])
    views = [view_of(job_dir, t) for t in tests]
    page = _templates().get_template("job.html").render(
        css=_css(), job_id=str(data.get("job_id", "")), tests=views, header=_header(job_dir, data, tests),
        avocado_page="results.html" if (job_dir / "results.html").is_file() else "",
        failed=[v for v in views if v["status"] in FAILED], known=[v for v in views if v["status"] == "WARN"],
        tcg_note=runs.TCG_NOTE if "tcg" in runs.accels_of(job_dir) else "",
        rest=[v for v in views if v["status"] not in FAILED and v["status"] != "WARN"],
    )  # fmt: skip
    out = job_dir / "report.html"
    out.write_text(page)
    return out


# -- the nightly page ----------------------------------------------------------------
LETTER = {"PASS": "P", "WARN": "W", "FAIL": "F", "ERROR": "E", "INTERRUPTED": "I", "CANCEL": "C", "SKIP": "S"}


def job_verdicts(job_dir: Path) -> dict[str, dict[str, Any]]:
    """{test name: {"status", "seed", "id"}} of one Avocado job (empty if it left no results)."""
    try:
        tests = json.loads((Path(job_dir) / "results.json").read_text()).get("tests", [])
    except (OSError, ValueError):
        return {}
    return {
        t.get("name", "?"): {"status": t.get("status", "?"), "seed": runs.whiteboard(t).get("seed"), "id": t.get("id")}
        for t in tests
    }


def nightly_jobs(results_dir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The jobs of a nightly results dir (``nightly-<version>/job-*``, oldest first) and the QEMU versions
    in the order the nightly ran them (its summary's, else by version)."""
    results_dir = Path(results_dir)
    jobs = []
    for version_dir in sorted(p for p in results_dir.glob("nightly-*") if p.is_dir()):
        version = version_dir.name.removeprefix("nightly-")
        for i, job_dir in enumerate(sorted(p for p in version_dir.glob("job-*") if p.is_dir()), 1):
            jobs.append({"iteration": i, "qemu": version, "job_dir": str(job_dir), "tests": job_verdicts(job_dir)})
    try:
        versions = list(json.loads((results_dir / "nightly-summary.json").read_text())["qemus"])
    except (OSError, ValueError, KeyError):
        versions = sorted({j["qemu"] for j in jobs}, key=lambda v: [int(n) for n in re.findall(r"\d+", v)])
    return jobs, versions


def render_nightly(out_dir: Path, jobs: Sequence[dict[str, Any]], versions: Sequence[str]) -> Path:
    """``nightly.html`` in ``out_dir``: a grid test x QEMU version x iteration (verdict letter, seed, a link
    to that job's report), per test how often it failed (FAIL/ERROR: new, a finding or the suite's fault)
    and how often a known issue showed (WARN); INTERRUPTED (cut by the budget) counts as neither."""
    out_dir = Path(out_dir).resolve()
    rows = []
    for name in sorted({name for job in jobs for name in job["tests"]}):
        cells, counted, new, known = [], 0, 0, 0
        for version in versions:
            marks = []
            for job in (j for j in jobs if j["qemu"] == version and name in j["tests"]):
                verdict = job["tests"][name]
                status = str(verdict["status"])
                counted += status != "INTERRUPTED"
                new += status in ("FAIL", "ERROR")
                known += status == "WARN"
                job_dir = Path(job["job_dir"])
                href = job_dir.relative_to(out_dir) if job_dir.is_relative_to(out_dir) else job_dir
                marks.append({
                    "status": status, "letter": LETTER.get(status, "?"),
                    "title": f"iteration {job['iteration']}, seed {verdict.get('seed')}: {status}",
                    "href": f"{href}/report.html#{verdict.get('id') or ''}",
                })  # fmt: skip
            cells.append(marks)
        rows.append({"name": name, "cells": cells, "failed": f"{new}/{counted}" if counted else "-",
                     "known": f"{known}/{counted}" if counted else "-"})  # fmt: skip
    failures = sum(1 for j in jobs for v in j["tests"].values() if v["status"] in ("FAIL", "ERROR"))
    page = (
        _templates()
        .get_template("nightly.html")
        .render(css=_css(), jobs=len(jobs), versions=list(versions), failures=failures, rows=rows)
    )
    out = out_dir / "nightly.html"
    out.write_text(page)
    return out
