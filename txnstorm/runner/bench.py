"""`make bench`: the suite's speed and strength, measured side by side in one run.

Prints a table and writes bench.json; asserts nothing (no timed tests).

* boot: boot-to-SSH of the tiny guest, median of N boots, beside the median of N restores of a
  saved guest of the same shape (``vm/boot_states``, what the scenario tests do), and beside ONE boot of
  a plain debootstrapped Debian 12 (systemd, OpenSSH) on the same QEMU and
  kernel (``guests/debian-bench``: a bench-only asset, built the first time
  ``make bench`` needs it, then cached), as a ratio;
* storm intensity: guest fio IOPS on a dataplane qcow2 disk beside host fio
  (Debian's fio, ioengine=nbd) against a qcow2 node of the same QEMU through
  its NBD export, as a ratio;
* checks per minute and time to the first verified transaction, detection
  per negative control: from an Avocado run of the quick matrix tests.

``make bench BASELINE=<rev>`` measures only the round cadence instead, side by side: the race
test and ``test_two_disks_one_iothread`` run from a worktree of ``rev`` and from this tree in
turn (``PAIRS`` times, the same seed for both of a pair), and prints each test's checks per
minute and median round-to-round seconds on both sides with the ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from txnstorm import REPO
from txnstorm.errors import TxnstormError, UserError
from txnstorm.host import assets
from txnstorm.host.images import QemuImg
from txnstorm.host.scratch import private_dir
from txnstorm.runner import entry, runs
from txnstorm.settings import Settings
from txnstorm.vm import testbed
from txnstorm.vm.boot import booted
from txnstorm.vm.boot_states import BootStates
from txnstorm.vm.machine import Machine, Platform
from txnstorm.vm.testbed import Bed
from txnstorm.vm.topology import Disk, Topology
from txnstorm.vm.write_counters import wait_until_writing
from txnstorm.workload import nbd
from txnstorm.workload.fio import parse_fio_json
from txnstorm.workload.guest_storm import start_storm

BENCH_TOPOLOGY = Topology("bench", (Disk("disk0", iothread="io0"), Disk("disk1", iothread=None, share_rw=True)))
SECONDS = 8
DEBIAN_RECIPE = "debian-bench"  # bench-only guest: no test boots it
# Its root disk (serial "root", found by the guest's initramfs) is a qcow2
# overlay of the cached root.img, so a boot never modifies the cache.
DEBIAN_TOPOLOGY = Topology("debian-bench", (Disk("root", fmt="qcow2", iothread=None),))
DEBIAN_SSH_DEADLINE_S = 300.0


def _boot_times(
    platform: Platform, image: assets.GuestImage, n: int, tmp: Path, states: BootStates | None = None
) -> list[float]:
    """Seconds to SSH of ``n`` guests: booted, or with ``states`` restored (a first, saving,
    guest before them is not counted)."""
    img = QemuImg(platform.sut.qemu_img)
    images = {d.name: img.create(tmp / f"{d.name}.qcow2", d.size) for d in BENCH_TOPOLOGY.disks}
    times = []
    for i in range(n + (1 if states else 0)):
        vm = Machine(platform, BENCH_TOPOLOGY, tmp / f"boot{i}", images)
        with booted(vm, image, states=states) as b:
            times.append(b.boot_seconds)
    return times[-n:]


def debian_guest(settings: Settings, say: Callable[[str], None] = print) -> assets.GuestImage:
    """The plain Debian guest; built (first time only, a few minutes) when missing."""
    try:
        return testbed.guest(settings, recipe=DEBIAN_RECIPE, say=say)
    except UserError:
        say(f"bench: building the plain Debian guest '{DEBIAN_RECIPE}' (bench-only asset, first time only) ...")
        return testbed.guest(settings, recipe=DEBIAN_RECIPE, allow_build=True, say=say)


def debian_boot_time(bed: Bed, image: assets.GuestImage, tmp: Path) -> float:
    """Seconds from QEMU start to the first SSH command of ONE plain Debian boot (on ``bed``'s
    QEMU, accelerator and settings)."""
    overlay = QemuImg(bed.sut.qemu_img).create_overlay(tmp / "debian-root.qcow2", image.directory / "root.img", "raw")
    vm = Machine(bed.platform_for(image), DEBIAN_TOPOLOGY, tmp / "debian-boot", {"root": overlay})
    with booted(vm, image, ssh_deadline_s=DEBIAN_SSH_DEADLINE_S) as b:
        return b.boot_seconds


def _debian_boot(bed: Bed, tiny_median: float, tmp: Path) -> dict[str, Any]:
    """One plain Debian boot beside the tiny guest's median; an error is recorded, not raised."""
    try:
        seconds = debian_boot_time(bed, debian_guest(bed.settings), tmp)
    except TxnstormError as exc:
        return {"seconds": None, "tiny_faster_by": None, "error": str(exc).splitlines()[0]}
    return {"seconds": round(seconds, 2), "tiny_faster_by": round(seconds / tiny_median, 1), "boots": 1,
            "recipe": DEBIAN_RECIPE, "bench_only": True}  # fmt: skip


def thread_cpu_seconds(pid: int | None) -> dict[str, float]:
    """CPU seconds (user + system) per QEMU thread name: "IO io0" is the
    iothread, "CPU 0/TCG" a vCPU, the rest summed as "other"."""
    if pid is None:
        return {}
    tick = os.sysconf("SC_CLK_TCK")
    per_name: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            comm = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = comm if comm.startswith(("IO ", "CPU ")) else "other"
        per_name[name] = per_name.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return per_name


def _storm_iops(platform: Platform, image: assets.GuestImage, tmp: Path) -> dict[str, Any]:
    """Guest fio on disk0 (dataplane), then host fio over NBD on disk1's node (idle in the guest)."""
    img = QemuImg(platform.sut.qemu_img)
    images = {d.name: img.create(tmp / f"s-{d.name}.qcow2", d.size) for d in BENCH_TOPOLOGY.disks}
    vm = Machine(platform, BENCH_TOPOLOGY, tmp / "storm", images)
    with booted(vm, image) as b:
        storm = start_storm(b, ["disk0"], runtime_s=SECONDS, name="bench")
        wait_until_writing(b.vm, ["disk0"])
        cpu_before, wall_before = thread_cpu_seconds(b.vm.pid), time.monotonic()
        guest = storm.wait(SECONDS + 60).check().jobs["disk0"].write_iops
        cpu_after, wall = thread_cpu_seconds(b.vm.pid), time.monotonic() - wall_before
        shares = {
            name: round((cpu_after.get(name, 0.0) - used) / wall, 2) for name, used in cpu_before.items()
        }  # fmt: skip
        nbd.start_server(b.vm)
        uri = nbd.export(b.vm, "disk1", "bench", writable=True)
        fio = shutil.which("fio")
        host = None
        if fio:
            out = subprocess.run(
                [fio, "--name=host", "--ioengine=nbd", f"--uri={uri}", "--rw=randwrite", "--bs=4k", "--iodepth=8",
                 f"--runtime={SECONDS}", "--time_based", "--size=60M", "--output-format=json"],
                capture_output=True, text=True, timeout=SECONDS + 60, check=False,
            ).stdout  # fmt: skip
            docs = parse_fio_json(out)
            host = docs[-1]["jobs"][0]["write"]["iops"] if docs else None
    return {"guest_iops": round(guest), "host_nbd_iops": round(host) if host else None,
            "ratio": round(guest / host, 2) if host else None,
            "cpu_share_during_guest_storm": shares}  # fmt: skip


# An oracle checked in round N that also judges what round N-1 captured.
SPANS_PREVIOUS_ROUND = ("full + incremental",)


def control_rounds(oracle_lines: list[str], events: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    """(oracle, caught) for each check a control's separate commands could fail.

    A control may keep some rounds atomic (the bitmap-round control does):
    a check counts only if a round it judges was fired as separate commands.
    """
    separate = {int(e["what"].split()[1].rstrip(":")) for e in events if e.get("atomic") is False}
    counted = []
    for line in oracle_lines:
        label, oracle = line.split(": ")[:2]
        n = int(label.split()[1])
        judged = {n, n - 1} if oracle.startswith(SPANS_PREVIOUS_ROUND) else {n}
        if judged & separate and ": not judged: " not in line:  # a round its writer was too slow to judge
            counted.append((oracle, "VIOLATION" in line))
    return counted


def _suite_figures(results: Path) -> dict[str, Any]:
    """Checks/min, first verified transaction, detection per control, from one Avocado job."""
    avocado = runs.avocado_binary()
    refs = [
        "tests/transaction_matrix.py:TransactionMatrix.test_two_disks_one_iothread",
        "tests/transaction_matrix.py:TransactionMatrixControls",
        "tests/nbd_transaction.py",
    ]
    start = time.monotonic()
    subprocess.run(
        [str(avocado), "--config", "avocado.cfg", "run", "--job-results-dir", str(results), "-p", "rounds=10", *refs],
        cwd=REPO, check=False, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    wall = time.monotonic() - start
    data = json.loads((results / "latest" / "results.json").read_text())
    checks, first_verified, detection = 0, [], {}
    for test in data["tests"]:
        logdir = Path(test["logdir"])
        lines = (logdir / "oracle.log").read_text().splitlines() if (logdir / "oracle.log").exists() else []
        checks += len(lines)
        timeline = json.loads((logdir / "timeline.json").read_text()) if (logdir / "timeline.json").exists() else {}
        done = [e["t"] for e in timeline.get("events", []) if "jobs completed" in e.get("what", "")]
        if done:
            first_verified.append(done[0])
        if "control" in test.get("tags", {}):
            for oracle, caught in control_rounds(lines, timeline.get("events", [])):
                hits, total = detection.get(oracle, (0, 0))
                detection[oracle] = (hits + caught, total + 1)
    return {
        "statuses": {t["name"].split(":")[-1]: t["status"] for t in data["tests"]},
        "checks": checks,
        "wall_s": round(wall, 1),
        "checks_per_min": round(checks / (wall / 60), 1),
        "boot_to_first_jobs_completed_s": round(min(first_verified), 2) if first_verified else None,
        "detection": {
            k: f"{c}/{n} rounds (attempts to first detection: {1 if c else 'never'})"
            for k, (c, n) in sorted(detection.items())
        },  # fmt: skip
    }


# -- round cadence, this tree beside another revision (issue #23) ---------------------------
CADENCE_TESTS = (
    "tests/transaction_matrix.py:TransactionMatrix.test_guest_races_the_transaction",
    "tests/transaction_matrix.py:TransactionMatrix.test_two_disks_one_iothread",
)


@contextlib.contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """A detached git worktree of ``rev`` of this checkout, removed afterwards."""
    found = subprocess.run(["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=REPO, capture_output=True,
                           text=True, check=False)  # fmt: skip
    if found.returncode != 0:
        raise UserError(f"BASELINE={rev} is not a revision of this checkout (git rev-parse: {found.stderr.strip()})")
    with private_dir("baseline") as tmp:
        tree = tmp / "tree"
        subprocess.run(["git", "worktree", "add", "-q", "--detach", str(tree), found.stdout.strip()], cwd=REPO,
                       check=True)  # fmt: skip
        try:
            yield tree
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, check=False)


def round_starts(events: list[dict[str, Any]]) -> list[float]:
    return [e["t"] for e in events if e.get("what", "").endswith(": firing")]


def cadence_of(tree: Path, results: Path, seed: int) -> dict[str, dict[str, float]]:
    """The cadence tests run from ``tree`` (its own code: PYTHONPATH) with ``seed``: per test, its
    checks, seconds, checks per minute and the median seconds from one round's firing to the next."""
    avocado = runs.avocado_binary()
    env = {**os.environ, "PYTHONPATH": str(tree)}
    subprocess.run(
        [str(avocado), "--config", "avocado.cfg", "run", "--job-results-dir", str(results), "-p", f"seed={seed}",
         *map(runs.exact, CADENCE_TESTS)],
        cwd=tree, env=env, check=False, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    figures = {}
    for test in json.loads((results / "latest" / "results.json").read_text())["tests"]:
        logdir = Path(test["logdir"])
        checks = len((logdir / "oracle.log").read_text().splitlines()) if (logdir / "oracle.log").exists() else 0
        timeline = json.loads((logdir / "timeline.json").read_text()) if (logdir / "timeline.json").exists() else {}
        starts = round_starts(timeline.get("events", []))
        gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
        seconds = float(test.get("time_elapsed") or 0.0)
        figures[test["name"].split(":")[-1]] = {
            "status": test["status"], "checks": checks, "seconds": round(seconds, 1),
            "checks_per_min": round(checks / (seconds / 60), 1) if seconds else 0.0,
            "round_to_round_s": round(statistics.median(gaps), 2) if gaps else 0.0,
        }  # fmt: skip
    return figures


def side_by_side(baseline: str, pairs: int, results: Path, seed: int = 1) -> dict[str, Any]:
    """The cadence tests, the baseline revision and this tree in turn (``pairs`` times each, the
    same seed for both of a pair): the medians per test and this tree's ratio to the baseline."""
    runs: dict[str, list[dict[str, dict[str, float]]]] = {"baseline": [], "this tree": []}
    with worktree(baseline) as other:
        for i in range(pairs):
            for side, tree in (("baseline", other), ("this tree", REPO)):
                runs[side].append(cadence_of(tree, results / f"{side.replace(' ', '-')}-{i}", seed + i))
    table = {}
    for test in sorted({t for run in runs["this tree"] for t in run}):
        row = {}
        for side, side_runs in runs.items():
            per = [run[test] for run in side_runs if test in run]
            row[side] = {k: round(statistics.median(r[k] for r in per), 2)
                         for k in ("checks_per_min", "round_to_round_s", "checks", "seconds")}  # fmt: skip
            row[side]["statuses"] = [r["status"] for r in per]
        base = row["baseline"]["checks_per_min"]
        row["checks_per_min_ratio"] = round(row["this tree"]["checks_per_min"] / base, 2) if base else None
        table[test] = row
    return {"baseline": baseline, "pairs": pairs, "tests": table}


def main() -> int:
    parser = argparse.ArgumentParser(prog="make bench")
    parser.add_argument("--baseline", default="", help="also run the cadence tests of this revision, side by side")
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args()
    return entry.run(lambda settings: measure(args, settings), prog="make bench")


def measure(args: argparse.Namespace, settings: Settings) -> int:
    """What ``make bench`` measures, with the settings read once (the QEMU, ACCEL, the cache, every machine's)."""
    if args.baseline:
        with private_dir("bench") as tmp:
            figures = side_by_side(args.baseline, args.pairs, tmp / "results")
        out = REPO / "results" / "bench-cadence.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"txnstorm bench: round cadence, this tree vs {args.baseline} ({args.pairs} pairs, same seeds):")
        for test, row in figures["tests"].items():
            b, t = row["baseline"], row["this tree"]
            print(f"  {test:40} checks/min {b['checks_per_min']:6} -> {t['checks_per_min']:6} "
                  f"(x{row['checks_per_min_ratio']}); checks {b['checks']:g} in {b['seconds']:g} s -> "
                  f"{t['checks']:g} in {t['seconds']:g} s; round to round {b['round_to_round_s']:g} -> "
                  f"{t['round_to_round_s']:g} s; statuses {b['statuses']} / {t['statuses']}")  # fmt: skip
        print(f"  results: {out}")
        return 0
    bed = testbed.set_up(settings, needs_caps=False)
    assert bed.platform is not None and bed.guest is not None  # a guest was asked for
    platform, image, system = bed.platform, bed.guest, bed.sut
    with private_dir("bench") as tmp:
        boots = _boot_times(platform, image, 5, tmp)
        restores = _boot_times(platform, image, 5, tmp, BootStates(tmp / "boot-states"))
        debian = _debian_boot(bed, statistics.median(boots), tmp)
        storm = _storm_iops(platform, image, tmp)
        suite = _suite_figures(tmp / "results")
    result = {
        "qemu": system.version,
        "accel": platform.accel,
        "boot_to_ssh_s": {"median": round(statistics.median(boots), 2), "all": [round(b, 2) for b in boots]},
        "restore_to_ssh_s": {"median": round(statistics.median(restores), 2), "all": [round(r, 2) for r in restores]},
        "boot_to_ssh_debian": debian,
        "storm": storm,
        "suite": suite,
    }
    out = REPO / "results" / "bench.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"txnstorm bench (QEMU {system.version}, {platform.accel}):")
    print(f"  boot to SSH, median of 5         {result['boot_to_ssh_s']['median']} s  {result['boot_to_ssh_s']['all']}")
    restored = result["restore_to_ssh_s"]
    print(f"  restore to SSH, median of 5      {restored['median']} s  {restored['all']}  (a saved guest, "
          f"TXNSTORM_BOOT=restore: {round(result['boot_to_ssh_s']['median'] / restored['median'], 1)}x)")
    if debian["seconds"] is not None:
        print(f"  boot to SSH, plain Debian: {debian['seconds']} s; tiny guest is {debian['tiny_faster_by']}× faster")
    else:
        print(f"  boot to SSH, plain Debian: not measured ({debian['error']})")
    print(f"  guest fio IOPS (dataplane qcow2)  {storm['guest_iops']}")
    print(f"  host fio IOPS via NBD (qcow2)     {storm['host_nbd_iops']}   guest/host ratio {storm['ratio']}")
    print(f"  CPU share during the guest storm  {storm['cpu_share_during_guest_storm']} (cores per thread)")
    print(f"  oracle checks per minute          {suite['checks_per_min']} ({suite['checks']} in {suite['wall_s']} s)")
    print(f"  boot to first completed txn jobs  {suite['boot_to_first_jobs_completed_s']} s")
    for oracle, figure in suite["detection"].items():
        print(f"  control detection: {oracle:45} {figure}")
    print(f"  results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
