#!/usr/bin/env python3
"""KI-7 standalone: a virtio-blk dataplane queue stops completing guest writes
after drained sections (here: stop + cont) during a write storm; QEMU holds
nothing, the guest never took the last completions.

Needs qemu-system-x86_64, qemu-img, an ssh client and the txnstorm guest
(``make guest`` builds it into ~/.cache/txnstorm/guests/tiny-*: kernel,
initramfs with fio, per-build SSH keys).  Python 3 standard library only.

    docs/findings/KI-7/reproduce.py [--qemu Q] [--qemu-img I] [--guest DIR]
                                    [--sections N] [--accel tcg|kvm] [--abort]

Each section: ``stop``, ``cont``, then both disks must complete new writes
(``query-blockstats``) within 20 s.  ``--abort`` uses a ``transaction`` that
fails by its ``abort`` action instead of stop/cont.  On a stall it prints
QEMU's view of the stalled queue and the split ring read from guest memory
(used.idx vs the guest's used_event), then tries stop/cont once more.
Exit status: 1 stalled (reproduced), 0 no stall in N sections, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))  # qmp_lite, guest_lite
from guest_lite import FIO, Guest, bad_input, newest_guest  # noqa: E402
from qmp_lite import Qmp, end, launch  # noqa: E402


def write_ops(qmp: Qmp) -> dict[str, int]:
    answer = qmp.cmd("query-blockstats") or {}
    return {s["qdev"].split("/")[3].removesuffix("-dev"): s["stats"]["wr_operations"]
            for s in answer.get("return", []) if s.get("qdev", "").startswith("/machine/peripheral/")}  # fmt: skip


def writing(qmp: Qmp, timeout: float) -> bool:
    first, deadline = write_ops(qmp), time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = write_ops(qmp)
        if all(now[d] > first[d] for d in first):
            return True
    return False


def xp16(qmp: Qmp, address: int) -> int:
    out = (qmp.cmd("human-monitor-command", **{"command-line": f"xp /1hx {address:#x}"}) or {}).get("return", "")
    return int(re.search(r"0x([0-9a-f]+)\s*$", out.strip()).group(1), 16)


def show_queues(qmp: Qmp) -> None:
    for disk in ("disk0", "disk1"):
        path = f"/machine/peripheral/{disk}-dev/virtio-backend"
        s = qmp.cmd("x-query-virtio-queue-status", path=path, queue=0)["return"]
        num, avail, used = s["vring-num"], s["vring-avail"], s["vring-used"]
        ring = {"avail.idx": xp16(qmp, avail + 2), "used_event": xp16(qmp, avail + 4 + 2 * num),
                "avail_event": xp16(qmp, used + 4 + 8 * num)}  # fmt: skip
        print(f"{disk}: QEMU last_avail_idx {s['last-avail-idx']} inuse {s['inuse']} used_idx {s['used-idx']} "
              f"signalled_used {s['signalled-used']}; ring {ring}")  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--qemu", default=shutil.which("qemu-system-x86_64"))
    p.add_argument("--qemu-img", default=shutil.which("qemu-img"))
    p.add_argument("--guest", default=newest_guest(), help="the txnstorm guest dir (make guest)")
    p.add_argument("--sections", type=int, default=400)
    p.add_argument("--accel", default="tcg", choices=("tcg", "kvm"))
    p.add_argument("--abort", action="store_true", help="failing transactions instead of stop/cont")
    args = p.parse_args()
    problem = bad_input({"--qemu": args.qemu, "--qemu-img": args.qemu_img}, args.guest)
    if problem:
        print(f"KI-7/reproduce.py: {problem}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="ki7-") as tmp:
        guest = Guest(args.guest, tmp, args.accel)
        cmd = [args.qemu, *guest.args, "-qmp", f"unix:{tmp}/qmp.sock,server=on,wait=off", "-object", "iothread,id=io0"]
        for disk in ("disk0", "disk1"):
            subprocess.run([args.qemu_img, "create", "-q", "-f", "qcow2", f"{tmp}/{disk}.qcow2", "64M"], check=True)
            cmd += ["-blockdev", json.dumps({"driver": "qcow2", "node-name": disk,
                                             "file": {"driver": "file", "filename": f"{tmp}/{disk}.qcow2"}}),
                    "-device", f"virtio-blk-pci,id={disk}-dev,drive={disk},serial={disk},iothread=io0"]  # fmt: skip
        proc = launch(cmd, cwd=tmp)
        try:
            qmp = Qmp(f"{tmp}/qmp.sock", echo=False)
            if not guest.wait_ready(proc):
                return 2
            # /tmp/disk0 -> /dev/vdX by serial, then fio on each in the background
            links = "for s in /sys/block/vd*; do ln -sf /dev/${s##*/} /tmp/$(cat $s/serial); done; "
            guest.ssh(links + " ".join(FIO.format(dev=f"/tmp/{d}") for d in ("disk0", "disk1")))
            if not writing(qmp, 60):
                print("the storm never started writing")
                return 2
            kind = "failing transactions" if args.abort else "stop/cont"
            print(f"storm running; {args.sections} drained sections ({kind})")
            for section in range(1, args.sections + 1):
                if args.abort:
                    qmp.cmd("transaction", actions=[{"type": "abort", "data": {}}])
                else:
                    qmp.cmd("stop")
                    qmp.cmd("cont")
                if not writing(qmp, 20):
                    print(f"STALL after {section} drained sections: a disk completed no write for 20 s")
                    show_queues(qmp)
                    qmp.cmd("stop")
                    qmp.cmd("cont")
                    print("after one more stop/cont:", "writing again" if writing(qmp, 10) else "still stalled")
                    print("REPRODUCED")
                    return 1
            print(f"not reproduced: no stall in {args.sections} drained sections")
            return 0
        finally:
            print(end(proc)[-2000:], end="")


if __name__ == "__main__":
    sys.exit(main())
