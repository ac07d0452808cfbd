"""An HTML page per Avocado job: verdicts, known issues, and per test the
timeline picture a maintainer looks at first: storm throughput per disk over
time (from QEMU's own write counters), with the moment each transaction
fired, was answered and its jobs completed.  Self-contained (inline SVG, no
scripts), so it opens from a CI artifact as it is.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from txnstorm.errors import UserError
from txnstorm.runner import runs

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


def render_job(job_dir: Path) -> Path:
    """Write ``report.html`` into an Avocado job results dir; return its path."""
    job_dir = Path(job_dir).resolve()
    try:
        data = json.loads((job_dir / "results.json").read_text())
    except (OSError, ValueError):
        raise UserError(f"{job_dir} has no readable results.json; give an Avocado job results dir") from None
    tests = data.get("tests", [])
    known = [t for t in tests if t.get("status") == "WARN"]
    bad = [t for t in tests if t.get("status") in ("FAIL", "ERROR", "INTERRUPTED")]
    rows, sections = [], []
    for test in tests:
        board = runs.whiteboard(test)
        name = html.escape(test.get("name", "?"))
        status = html.escape(test.get("status", "?"))
        note = _known_issue_label(test) if test.get("status") == "WARN" else _reason(test)
        rows.append(
            f'<tr class="{status}"><td><a href="#{html.escape(test.get("id", ""))}">{name}</a></td><td>{status}</td>'
            f"<td>{test.get('time_elapsed', 0):.1f} s</td><td>{html.escape(str(board.get('seed', '')))}</td>"
            f"<td>{html.escape(note)[:300]}</td></tr>"
        )
        logdir = Path(test.get("logdir", ""))
        picture = ""
        if (logdir / "timeline.json").is_file():
            picture = svg_timeline(json.loads((logdir / "timeline.json").read_text()))
        oracle = ""
        if (logdir / "oracle.log").is_file():
            oracle = f"<pre>{html.escape((logdir / 'oracle.log').read_text())}</pre>"
        rel = logdir.relative_to(job_dir) if logdir.is_relative_to(job_dir) else logdir
        sections.append(
            f'<section id="{html.escape(test.get("id", ""))}"><h2>{name} — {status}</h2>'
            f"<p>seed {html.escape(str(board.get('seed', '?')))}, QEMU {html.escape(str(board.get('qemu', '?')))}, "
            f'accel {html.escape(str(board.get("accel", "?")))}; logs: <a href="{html.escape(str(rel))}">'
            f"{html.escape(str(rel))}</a></p>{picture}{oracle}</section>"
        )
    known_list = "".join(
        f"<li>{html.escape(_known_issue_label(t))} ({html.escape(t.get('name', '?'))})</li>" for t in known
    ) or "<li>none</li>"  # fmt: skip
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>txnstorm job {html.escape(str(data.get("job_id", "")))[:12]}</title>
<style>body{{font-family:sans-serif;margin:1em 2em}} td,th{{padding:2px 8px;text-align:left}}
tr.PASS td:nth-child(2){{color:#2ca02c}} tr.FAIL td:nth-child(2),tr.ERROR td:nth-child(2){{color:#d62728}}
tr.WARN td:nth-child(2){{color:#ff7f0e}} pre{{background:#f4f4f4;padding:6px;font-size:12px}}</style></head>
<body><h1>txnstorm: {len(tests)} tests, {len(bad)} failed, {len(known)} known issues</h1>
<h2>Known issues</h2><ul id="known-issues">{known_list}</ul>
<h2>Tests</h2><table id="summary"><tr><th>test</th><th>status</th><th>time</th><th>seed</th><th>note</th></tr>
{"".join(rows)}</table>
{"".join(sections)}
</body></html>
"""
    out = job_dir / "report.html"
    out.write_text(page)
    return out
