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
import platform
import re
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from txnstorm import REPO
from txnstorm.errors import UserError
from txnstorm.runner import runs

FAILED = ("FAIL", "ERROR", "INTERRUPTED")
# The log files a failure is diagnosed from, in the order a maintainer opens them.
EVIDENCE_FILES = (
    "qemu-stderr.log", "qmp.log", "console.log", "oracle.log", "stall.json", "virtqueues.json",
    "qemu-crash-backtrace.txt", "qemu-backtrace.txt", "timeline.json", "qemu-cmdline.txt", "qemu-trace.log",
    "debug.log",
)  # fmt: skip
EVIDENCE_GLOBS = ("fio-*.json", "fio-*-hung.txt")
BACKTRACE_LINES = 12

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b"]
MARKS = {"firing": "#ff7f0e", "answered": "#d62728", "jobs completed": "#2ca02c"}


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


def svg_timeline(timeline: dict[str, Any] | list[Any], width: int = 900, height: int = 240) -> str:
    if isinstance(timeline, list):  # timeline.json before write counters were kept
        timeline = {"events": timeline}
    samples, events = timeline.get("write_ops", []), timeline.get("events", [])
    series = rates(samples)
    pad_l, pad_r, pad_t, pad_b = 60, 20, 20, 40
    t_max = max([s["t"] for s in samples] + [e["t"] for e in events] + [1.0])
    y_max = max([r for pts in series.values() for _, r in pts] + [1.0])

    def x(t: float) -> float:
        return pad_l + (width - pad_l - pad_r) * t / t_max

    def y(v: float) -> float:
        return height - pad_b - (height - pad_t - pad_b) * v / y_max

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" class="timeline">',
        f'<rect x="{pad_l}" y="{pad_t}" width="{width - pad_l - pad_r}" height="{height - pad_t - pad_b}" '
        'fill="#fafafa" stroke="#ccc"/>',
        f'<text x="{pad_l}" y="{height - 8}" font-size="11">0 s</text>',
        f'<text x="{width - pad_r - 170}" y="{height - 8}" font-size="11">{t_max:.1f} s since QEMU start</text>',
        f'<text x="4" y="{pad_t + 10}" font-size="11">{y_max:.0f}</text>',
        f'<text x="4" y="{height - pad_b}" font-size="11">0 writes/s</text>',
    ]
    for event in events:
        what = str(event.get("what", ""))
        color = next((c for k, c in MARKS.items() if k in what), None)
        if color is None:
            continue
        xe = x(event["t"])
        title = html.escape(f"{event['t']:.3f} s: {what}")
        parts.append(
            f'<line x1="{xe:.1f}" y1="{pad_t}" x2="{xe:.1f}" y2="{height - pad_b}" stroke="{color}" '
            f'stroke-width="1.5" class="mark"><title>{title}</title></line>'
        )
    for i, (disk, pts) in enumerate(sorted(series.items())):
        color = COLORS[i % len(COLORS)]
        points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{points}" class="disk"/>')
        parts.append(f'<text x="{pad_l + 8 + 90 * i}" y="{pad_t + 14}" font-size="12" fill="{color}">{disk}</text>')
    legend = " ".join(
        f'<tspan fill="{c}">| {html.escape(k)}</tspan>' for k, c in MARKS.items()
    )  # fmt: skip
    parts.append(f'<text x="{pad_l + 200}" y="{pad_t + 14}" font-size="12">{legend}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _reason(test: dict[str, Any]) -> str:
    return "" if test.get("status") == "PASS" else str(test.get("fail_reason") or "")


def _known_issue_label(test: dict[str, Any]) -> str:
    """A reproducer's verdict ("known issue KI-n, still reproduces on QEMU x")."""
    board = runs.whiteboard(test)
    nested = board.get("known_issue") if isinstance(board.get("known_issue"), dict) else {}
    return str(nested.get("label") or board.get("label") or test.get("fail_reason") or test.get("name", "?"))


def _e(value: object) -> str:
    return html.escape(str(value))


def _commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10, check=False)  # fmt: skip
    except OSError:
        return "?"
    return out.stdout.strip() or "?"


def evidence_files(logdir: Path) -> list[Path]:
    """The log files of a test dir that exist, in the order of EVIDENCE_FILES."""
    found = [logdir / name for name in EVIDENCE_FILES if (logdir / name).is_file()]
    for pattern in EVIDENCE_GLOBS:
        found += sorted(logdir.glob(pattern))
    return found


def assertion_line(logdir: Path) -> str:
    """QEMU's last assertion or fatal line from its stderr, if any."""
    path = logdir / "qemu-stderr.log"
    if not path.is_file():
        return ""
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if re.search(r"Assertion|assert|fatal|BUG", ln)]
    return lines[-1].strip() if lines else ""


def backtrace_excerpt(logdir: Path) -> str:
    """The first frames of the thread that crashed (or of thread 1 of a hang)."""
    for name in ("qemu-crash-backtrace.txt", "qemu-backtrace.txt"):
        path = logdir / name
        if not path.is_file():
            continue
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


def _links(job_dir: Path, logdir: Path) -> str:
    items = []
    for path in evidence_files(logdir):
        rel = path.relative_to(job_dir) if path.is_relative_to(job_dir) else path
        items.append(f'<a class="log" href="{_e(rel)}">{_e(path.name)}</a>')
    rel_dir = logdir.relative_to(job_dir) if logdir.is_relative_to(job_dir) else logdir
    items.append(f'<a class="log" href="{_e(rel_dir)}">(the whole dir)</a>')
    return " · ".join(items)


def _replay(test: dict[str, Any], board: dict[str, Any]) -> str:
    ref = re.sub(r"^\d+-", "", test.get("id", test.get("name", "?")))
    words = ["make", "replay-test", f"TEST={ref}"]
    if board.get("seed") is not None:
        words.append(f"SEED={board['seed']}")
    if board.get("qemu_path"):
        words.append(f"QEMU={board['qemu_path']}")
    return shlex.join(words)


def _test_section(job_dir: Path, test: dict[str, Any]) -> str:
    board = runs.whiteboard(test)
    status = str(test.get("status", "?"))
    logdir = Path(test.get("logdir", "") or "/nonexistent")
    control = "control" in (test.get("tags") or {})
    parts = [f'<section class="test {_e(status)}" id="{_e(test.get("id", ""))}">',
             f"<h3>{_e(status)} {_e(test.get('name', '?'))}</h3>",
             f"<p>seed {_e(board.get('seed', '?'))}, QEMU {_e(board.get('qemu', '?'))}, "
             f"accel {_e(board.get('accel', '?'))}, {test.get('time_elapsed', 0):.1f} s</p>"]  # fmt: skip
    if status in FAILED or status == "WARN":
        reason = _known_issue_label(test) if status == "WARN" else _reason(test)
        parts.append(f'<p class="reason">{_e(reason)}</p>')
    if status in FAILED:
        crash = assertion_line(logdir)
        if crash:
            parts.append(f'<p class="assertion">QEMU: <code>{_e(crash)}</code></p>')
        parts.append(f'<p>replay: <code class="replay">{_e(_replay(test, board))}</code></p>')
        bad = [ln for ln in oracle_lines(logdir, control) if "VIOLATION" in ln]
        if bad:
            parts.append(f'<pre class="violations">{_e(chr(10).join(bad[:10]))}</pre>')
        trace = backtrace_excerpt(logdir)
        if trace:
            parts.append(f'<pre class="backtrace">{_e(trace)}</pre>')
    if logdir.is_dir():
        parts.append(f'<p class="logs">logs: {_links(job_dir, logdir)}</p>')
        if (logdir / "timeline.json").is_file():
            parts.append(svg_timeline(json.loads((logdir / "timeline.json").read_text())))
        lines = oracle_lines(logdir, control)
        if lines:
            parts.append(f'<pre class="oracle">{_e(chr(10).join(lines))}</pre>')
    parts.append("</section>")
    return "\n".join(parts)


def _header(job_dir: Path, data: dict[str, Any], tests: list[dict[str, Any]]) -> str:
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
    totals = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    qemu_text = "; ".join(f"{v} ({p})" if p else v for v, p in sorted(qemus.items())) or "?"
    rows = [
        ("QEMU", qemu_text), ("accelerator", "; ".join(sorted(accels)) or "?"), ("txnstorm", _commit()),
        ("host", platform.node()), ("job", f"{data.get('job_id', '?')} ({job_dir})"), ("totals", totals),
    ]  # fmt: skip
    return '<table id="job">' + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows) + "</table>"


STYLE = """body{font-family:sans-serif;margin:1em 2em;max-width:1200px}
td,th{padding:2px 8px;text-align:left;vertical-align:top}
section.test{border-left:4px solid #ccc;padding:0 1em;margin:1em 0}
section.FAIL,section.ERROR,section.INTERRUPTED{border-color:#d62728}
section.WARN{border-color:#ff7f0e} section.PASS{border-color:#2ca02c}
p.reason{font-weight:bold;white-space:pre-wrap;overflow-wrap:anywhere}
pre{background:#f4f4f4;padding:6px;font-size:12px;white-space:pre-wrap;overflow-wrap:anywhere}
code{overflow-wrap:anywhere} a.log{margin-right:2px}"""


def render_job(job_dir: Path) -> Path:
    """Write ``report.html`` into an Avocado job results dir; return its path."""
    job_dir = Path(job_dir).resolve()
    try:
        data = json.loads((job_dir / "results.json").read_text())
    except (OSError, ValueError):
        raise UserError(f"{job_dir} has no readable results.json; give an Avocado job results dir") from None
    tests = data.get("tests", [])
    bad = [t for t in tests if t.get("status") in FAILED]
    known = [t for t in tests if t.get("status") == "WARN"]
    rest = [t for t in tests if t not in bad and t not in known]
    known_list = "".join(
        f"<li>{_e(_known_issue_label(t))} ({_e(t.get('name', '?'))})</li>" for t in known
    ) or "<li>none</li>"  # fmt: skip
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>txnstorm job {_e(str(data.get("job_id", ""))[:12])}</title>
<style>{STYLE}</style></head>
<body><h1>txnstorm: {len(tests)} tests, {len(bad)} failed, {len(known)} known issues</h1>
{_header(job_dir, data, tests)}
<h2 id="failures">Failures ({len(bad)})</h2>
{"".join(_test_section(job_dir, t) for t in bad) or "<p>none</p>"}
<h2>Known issues ({len(known)})</h2><ul id="known-issues">{known_list}</ul>
{"".join(_test_section(job_dir, t) for t in known)}
<details id="passes"><summary><h2 style="display:inline">Passed and others ({len(rest)})</h2></summary>
{"".join(_test_section(job_dir, t) for t in rest)}
</details>
</body></html>
"""
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
    names = sorted({name for job in jobs for name in job["tests"]})
    rows = []
    for name in names:
        cells, runs_n, new, known = [], 0, 0, 0
        for version in versions:
            marks = []
            for job in (j for j in jobs if j["qemu"] == version and name in j["tests"]):
                verdict = job["tests"][name]
                status = str(verdict["status"])
                runs_n += status != "INTERRUPTED"
                new += status in ("FAIL", "ERROR")
                known += status == "WARN"
                job_dir = Path(job["job_dir"])
                href = job_dir.relative_to(out_dir) if job_dir.is_relative_to(out_dir) else job_dir
                title = f"iteration {job['iteration']}, seed {verdict.get('seed')}: {status}"
                link = f"{href}/report.html#{verdict.get('id') or ''}"
                letter = LETTER.get(status, "?")
                marks.append(f'<a class="v {_e(status)}" title="{_e(title)}" href="{_e(link)}">{letter}</a>')
            cells.append("<td>" + ("".join(marks) or "-") + "</td>")
        rate = f"{new}/{runs_n}" if runs_n else "-"
        rows.append(f"<tr><td>{_e(name)}</td>{''.join(cells)}<td>{rate}</td><td>{known}/{runs_n}</td></tr>")
    head = "".join(f"<th>QEMU {_e(v)}</th>" for v in versions)
    total_new = sum(1 for j in jobs for v in j["tests"].values() if v["status"] in ("FAIL", "ERROR"))
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>txnstorm nightly</title>
<style>{STYLE}
a.v{{display:inline-block;width:1.4em;text-align:center;margin:1px;text-decoration:none;color:#fff;border-radius:3px}}
a.PASS{{background:#2ca02c}} a.WARN{{background:#ff7f0e}} a.FAIL,a.ERROR{{background:#d62728}}
a.INTERRUPTED,a.CANCEL,a.SKIP{{background:#999}}</style></head>
<body><h1>txnstorm nightly: {len(jobs)} jobs over QEMU {_e(", ".join(versions))}, {total_new} failures</h1>
<p>Each letter is one iteration (P pass, W known issue, F fail, E error, I cut by the budget); hover for the
seed, click for that job's report.  "failed" counts FAIL and ERROR (new: not a listed known issue).</p>
<table id="grid"><tr><th>test</th>{head}<th>failed</th><th>known issue</th></tr>
{"".join(rows)}</table></body></html>
"""
    out = out_dir / "nightly.html"
    out.write_text(page)
    return out
