import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from txnstorm.runner import runs
from txnstorm.runner.report import rates, render_job, svg_timeline

TIMELINE = {
    "events": [
        {"t": 2.0, "what": "round 1: firing"},
        {"t": 2.1, "what": "round 1: transaction answered"},
        {"t": 2.3, "what": "round 1: jobs completed"},
    ],
    "write_ops": [
        {"t": 1.0, "disk0": 0, "disk1": 0},
        {"t": 1.5, "disk0": 500, "disk1": 400},
        {"t": 2.5, "disk0": 1500, "disk1": 900},
    ],
}
ASSERTION = "qemu-system-x86_64: ../block/io.c:525: bdrv_do_drained_end: Assertion `bs->quiesce_counter > 0' failed."
BACKTRACE = "Thread 2 (x):\n#0 poll\n\nThread 1 (Thread 0x1 (LWP 9)):\n#0 __pthread_kill\n#6 bdrv_do_drained_end\n"


def make_test_dir(root: Path, name: str, files: dict[str, str]) -> Path:
    logdir = root / "test-results" / name
    logdir.mkdir(parents=True)
    for file, text in files.items():
        (logdir / file).write_text(text)
    return logdir


def job(tmp_path: Path) -> Path:
    """A job as Avocado writes it: one PASS control, one WARN known issue, one FAIL with every kind of evidence."""
    passed = make_test_dir(tmp_path, "1-pass", {
        "timeline.json": json.dumps(TIMELINE),
        "oracle.log": "round 1: drive-backup == frozen base: VIOLATION: differ at offset 4096\n",
    })  # fmt: skip
    failed = make_test_dir(tmp_path, "3-fail", {
        "timeline.json": json.dumps(TIMELINE), "qemu-stderr.log": f"noise\n{ASSERTION}\n",
        "oracle.log": "round 1: stamps: VIOLATION: a=7 b=5\nround 1: backup == base: ok: identical\n",
        "qemu-crash-backtrace.txt": BACKTRACE, "qmp.log": "{}", "console.log": "", "fio-storm.json": "{}",
    })  # fmt: skip
    board = {"seed": 42, "qemu": "7.2.22", "accel": "tcg", "qemu_path": "/usr/bin/qemu-system-x86_64",
             "accel_reason": "KVM probe failed"}  # fmt: skip
    tests = [
        {"id": "1-tests/a.py:A.test_control", "name": "tests/a.py:A.test_control", "status": "PASS",
         "logdir": str(passed), "time_elapsed": 3.2, "tags": {"control": None}, "whiteboard": json.dumps(board)},
        {"id": "2-tests/k.py:K.test_y", "name": "tests/k.py:K.test_y", "status": "WARN", "logdir": "",
         "time_elapsed": 1.0, "fail_reason": "known issue KI-1, still reproduces on QEMU 7.2.22",
         "whiteboard": json.dumps({"known_issue": {"label": "known issue KI-1, still reproduces on QEMU 7.2.22"}})},
        {"id": "3-tests/f.py:F.test_z", "name": "tests/f.py:F.test_z", "status": "FAIL", "logdir": str(failed),
         "time_elapsed": 9.0, "fail_reason": f"QEMU crashed: QEMU killed by SIGABRT: {ASSERTION} (QEMU 7.2.22)",
         "whiteboard": json.dumps({**board, "failure": {"noticed_by": "SSHException: SSH session not active"}})},
    ]  # fmt: skip
    (tmp_path / "results.json").write_text(json.dumps({"job_id": "abc123", "tests": tests}))
    return render_job(tmp_path)


def test_rates_are_writes_per_second_between_readings():
    assert rates(TIMELINE["write_ops"])["disk0"] == [(1.5, 1000.0), (2.5, 1000.0)]


def test_svg_marks_each_moment_and_draws_each_disk():
    svg = svg_timeline(TIMELINE)
    assert svg.count('class="mark"') == 3 and svg.count('class="disk"') == 2


def test_failures_come_first_with_what_triage_needs(tmp_path):
    page = job(tmp_path).read_text()
    assert page.index("tests/f.py:F.test_z") < page.index("tests/k.py:K.test_y") < page.index("test_control")
    failure = page.split('id="3-tests/f.py:F.test_z"')[1].split("</section>")[0]
    assert "QEMU crashed: QEMU killed by SIGABRT" in failure
    assert "bdrv_do_drained_end: Assertion" in failure.split('class="assertion"')[1]
    # QEMU's death is the verdict; what met it first (here SSH) is the evidence under it (issue #39)
    assert "first noticed as: <code>SSHException: SSH session not active</code>" in failure
    replay = re.search(r'<code class="replay">(.*?)</code>', failure).group(1)
    assert replay == "make run TEST=tests/f.py:F.test_z SEED=42 QEMU=/usr/bin/qemu-system-x86_64 ACCEL=tcg"
    bisect = re.search(r'<code class="bisect">(.*?)</code>', failure).group(1)
    assert bisect.startswith("git bisect run /") and bisect.endswith("scripts/bisect-run tests/f.py:F.test_z 42")
    assert "stamps: VIOLATION: a=7 b=5" in failure.split('class="violations"')[1]
    assert "#6 bdrv_do_drained_end" in failure.split('class="backtrace"')[1]
    for name in (
        "qemu-stderr.log",
        "qmp.log",
        "console.log",
        "oracle.log",
        "qemu-crash-backtrace.txt",
        "fio-storm.json",
    ):
        assert f'href="test-results/3-fail/{name}"' in failure, name


def test_the_header_names_qemu_accel_commit_and_totals(tmp_path):
    header = job(tmp_path).read_text().split('<table id="job">')[1].split("</table>")[0]
    assert "7.2.22 (/usr/bin/qemu-system-x86_64)" in header
    assert "tcg (KVM probe failed)" in header
    assert "1 FAIL, 1 PASS, 1 WARN" in header and "abc123" in header


def test_the_header_says_how_the_run_was_asked_side_by_side_included(tmp_path):
    job(tmp_path)
    about = {"tags": "quick", "shard": "1/1", "failfast": True, "jobs": 2, "seconds": 160}
    (tmp_path / runs.RUN_ABOUT).write_text(json.dumps(about))
    header = render_job(tmp_path).read_text().split('<table id="job">')[1].split("</table>")[0]
    assert "TAGS=quick SHARD=1/1 FAILFAST=1 JOBS=2" in header
    (tmp_path / runs.RUN_ABOUT).write_text(json.dumps({**about, "jobs": 1}))
    assert "JOBS=" not in render_job(tmp_path).read_text().split('<table id="job">')[1].split("</table>")[0]


def test_a_controls_catch_reads_as_expected(tmp_path):
    control = job(tmp_path).read_text().split('id="1-tests/a.py:A.test_control"')[1].split("</section>")[0]
    assert "caught (expected): differ at offset 4096" in control and "VIOLATION" not in control


def test_page_lists_known_issues_apart_from_failures(tmp_path):
    page = job(tmp_path).read_text()
    assert "1 known issues" in page and "1 failed" in page
    known = page.split('id="known-issues"')[1].split("</ul>")[0]
    assert "known issue KI-1, still reproduces on QEMU 7.2.22" in known


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    browser = shutil.which("chromium")
    if not browser:
        pytest.skip("chromium not installed (make setup installs it)")
    with tempfile.TemporaryDirectory(prefix="txnstorm-chromium-") as profile:
        return subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip


def test_every_text_is_escaped(tmp_path):
    logdir = make_test_dir(tmp_path, "1-x", {"oracle.log": "round 1: <b>x</b>: VIOLATION: <script>alert(1)</script>\n"})
    tests = [{"id": "1-t", "name": "tests/x.py:X.test_<i>", "status": "FAIL", "logdir": str(logdir),
              "fail_reason": "<img src=x onerror=alert(1)>", "whiteboard": "{}"}]  # fmt: skip
    (tmp_path / "results.json").write_text(json.dumps({"job_id": "j", "tests": tests}))
    page = render_job(tmp_path).read_text()
    assert "<script>alert" not in page and "<img src=x" not in page and "test_<i>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_the_avocado_job_page_is_linked_when_avocado_wrote_one(tmp_path):
    (tmp_path / "results.html").write_text("<html></html>")
    assert '<a href="results.html">Avocado\'s job page</a>' in job(tmp_path).read_text()


@pytest.mark.long(3.5)
def test_page_as_a_person_sees_it_in_a_real_browser(tmp_path):
    """Debian's chromium, headless: the DOM it builds puts the failure first, every
    log link resolves, the picture is there; a screenshot at desktop width is kept
    beside the page (report.png)."""
    page = job(tmp_path)
    dom = chromium("--dump-dom", page.as_uri()).stdout
    sections = re.findall(r'<section class="test (\w+)"', dom)
    assert sections[0] == "FAIL" and sections.index("WARN") < sections.index("PASS")
    hrefs = re.findall(r'<a class="log" href="([^"]+)"', dom)
    assert hrefs and all((tmp_path / h).exists() for h in hrefs), [h for h in hrefs if not (tmp_path / h).exists()]
    assert "<polyline" in dom and 'class="mark"' in dom
    # A link to a passed test (the nightly grid's) opens its collapsed section.
    opened = chromium("--dump-dom", f"{page.as_uri()}#1-tests/a.py:A.test_control").stdout
    assert opened.count('<details class="pass" open=""') == 1
    shot = page.with_name("report.png")
    chromium("--window-size=1280,1600", f"--screenshot={shot}", page.as_uri())
    assert shot.stat().st_size > 10_000


def test_the_nightly_grid_has_a_cell_per_qemu_and_a_mark_per_iteration(tmp_path):
    from txnstorm.runner.report import job_verdicts, render_nightly

    job(tmp_path)  # a real job dir (results.json and report.html)
    verdicts = job_verdicts(tmp_path)
    jobs = [
        {"iteration": 1, "qemu": "7.2.22", "job_dir": str(tmp_path), "tests": verdicts},
        {"iteration": 1, "qemu": "10.2.2", "job_dir": str(tmp_path), "tests": {
            "tests/f.py:F.test_z": {"status": "PASS", "seed": 7, "id": "3-tests/f.py:F.test_z"}}},
        {"iteration": 2, "qemu": "10.2.2", "job_dir": str(tmp_path), "tests": {
            "tests/f.py:F.test_z": {"status": "INTERRUPTED", "seed": 8, "id": "3-tests/f.py:F.test_z"}}},
    ]  # fmt: skip
    page = render_nightly(tmp_path, jobs, ["7.2.22", "10.2.2"]).read_text()
    row = page.split("<td>tests/f.py:F.test_z</td>")[1].split("</tr>")[0]
    cells = re.findall(r"<td>(.*?)</td>", row)
    assert 'class="v FAIL"' in cells[0] and 'title="iteration 1, seed 42: FAIL"' in cells[0]
    assert cells[1].count('class="v ') == 2  # two iterations on 10.2.2
    assert cells[2:] == ["1/2", "0/2"]  # failed 1 of 2 counted runs (INTERRUPTED is no finding), no known issue
    assert 'href="./report.html#3-tests/f.py:F.test_z"' in cells[0]
    assert "3 jobs over QEMU 7.2.22, 10.2.2, 1 failures" in page


def test_the_picture_counts_from_the_storm_start_with_ticks_units_and_a_clear_legend():
    from txnstorm.runner.report import nice_step

    timeline = {**TIMELINE, "events": [{"t": 0.8, "what": "storm started"}, *TIMELINE["events"]]}
    svg = svg_timeline(timeline)
    assert "seconds since the storm started" in svg and "writes/s" in svg
    assert svg.count('class="xtick"') >= 3 and svg.count('class="ytick"') >= 3
    assert ">0</text>" in svg  # the first tick is the storm's start, not QEMU's
    marks = re.findall(r'<line x1="([\d.]+)"[^>]*class="mark"><title>([\d.]+) s: ([^<]+)</title>', svg)
    assert [(float(t), what) for _, t, what in marks][0] == (1.2, "round 1: firing")
    # Legend entries left to right, each starting after the previous one's text ends (6.6 px per char).
    entries = re.findall(r'<line x1="([\d.]+)" y1="14"[^>]*class="legend"/><text x="[\d.]+" y="18">([^<]+)</text>', svg)
    assert [label for _, label in entries] == ["disk0", "disk1", "firing", "answered", "jobs completed"]
    for (x1, label), (x2, _) in zip(entries, entries[1:], strict=False):
        assert float(x2) >= float(x1) + 22 + 6.6 * len(label)
    # Disks and marks never share a colour.
    disk_colours = set(re.findall(r'<polyline fill="none" stroke="(#[0-9a-f]+)"', svg))
    mark_colours = set(re.findall(r'stroke="(#[0-9a-f]+)" stroke-width="1.2"', svg))
    assert disk_colours and mark_colours and not disk_colours & mark_colours
    assert [nice_step(s) for s in (2.5, 47, 900)] == [0.5, 10, 200]


IDLE_GUEST_QEMU = (
    "Thread 1 (Thread 0x1 (LWP 7)):\n#0  0x1 in __ppoll (fds=0x5) at ppoll.c:42\n#1  0x2 in main (argc=3) at main.c:9\n"
)
HUNG_DAEMON = (
    "Thread 1 (Thread 0x2 (LWP 8)):\n#0  0x1 in __ppoll (fds=0x5) at ppoll.c:42\n"
    "#3  0x2 in aio_poll (ctx=0x1) at aio-posix.c:700\n#4  0x3 in bdrv_drain_all_begin () at io.c:528\n"
    "#7  0x4 in qmp_transaction (actions=0x1) at blockdev.c:2260\n"
    "#9  0x5 in main (argc=19) at qemu-storage-daemon.c:434\n"
)


def test_a_guest_on_the_daemon_shows_the_daemons_logs_and_its_busy_backtrace(tmp_path):
    """tests/vhost_user_blk.py: the daemon's files are in daemon/; the hung one is the daemon, its
    backtrace is shown, not the idle guest QEMU's."""
    logdir = make_test_dir(tmp_path, "1-hang", {"qemu-backtrace.txt": IDLE_GUEST_QEMU, "qmp.log": "{}"})
    (logdir / "daemon").mkdir()
    for name, text in (("qemu-backtrace.txt", HUNG_DAEMON), ("qmp.log", "{}"), ("guest-diagnosis.txt", "")):
        (logdir / "daemon" / name).write_text(text)
    test = {"id": "1-tests/v.py:V.test_h", "name": "tests/v.py:V.test_h", "status": "FAIL", "logdir": str(logdir),
            "time_elapsed": 90.0, "fail_reason": "QEMU hung: QMP transaction: no answer within 60 s",
            "whiteboard": json.dumps({"seed": 1, "qemu": "10.2.2"})}  # fmt: skip
    (tmp_path / "results.json").write_text(json.dumps({"job_id": "j", "tests": [test]}))
    failure = render_job(tmp_path).read_text().split('id="1-tests/v.py:V.test_h"')[1].split("</section>")[0]
    backtrace = failure.split('class="backtrace"')[1].split("</pre>")[0]
    assert "daemon/qemu-backtrace.txt:" in backtrace and "bdrv_drain_all_begin" in backtrace
    for name in ("qmp.log", "daemon/qmp.log", "daemon/qemu-backtrace.txt", "daemon/guest-diagnosis.txt"):
        assert f'href="test-results/1-hang/{name}"' in failure, name


def test_a_violated_pair_comes_with_the_qemu_img_compare_of_its_kept_images(tmp_path):
    from txnstorm.runner.report import compare_commands

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    for name in ("backup-r3.qcow2", "disk0.qcow2", "disk0@r5.qcow2"):
        (scratch / name).write_text("")
    violations = [
        "round 3: backup == base: VIOLATION: backup-r3.qcow2 vs disk0.qcow2: first difference at offset 4096",
        "round 5: backup == snapshot: VIOLATION: backup-r3.qcow2 vs disk0.qcow2@r5: first difference at offset 0",
        "round 5: cross-disk stamps/guest (r5): VIOLATION: a=7 b=5",
        "round 6: drive-backup == frozen base: VIOLATION: gone.qcow2 vs disk0.qcow2: first difference at offset 0",
    ]
    assert compare_commands(tmp_path, violations, "/q/qemu-img") == [
        f"/q/qemu-img compare -f qcow2 -F qcow2 {scratch}/backup-r3.qcow2 {scratch}/disk0.qcow2",
        f"/q/qemu-img compare -f qcow2 -F qcow2 {scratch}/backup-r3.qcow2 {scratch}/disk0@r5.qcow2",
    ]
