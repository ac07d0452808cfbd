#!/usr/bin/env python3
"""KI-11 standalone: qemu-storage-daemon exports a qcow2 node over
vhost-user-blk in an iothread; a guest writes to it (fio); a QMP
``transaction`` fired at the daemon (one ``block-dirty-bitmap-add``: only the
``bdrv_drain_all()`` every transaction begins with) never answers: the
daemon's main thread polls in ``bdrv_drain_all_begin`` for good.

Needs qemu-storage-daemon, qemu-system-x86_64 (with vhost-user-blk-pci),
qemu-img, an ssh client and the txnstorm guest (``make guest``).  Python 3
standard library only.

    docs/findings/KI-11/reproduce.py [--qsd D] [--qemu Q] [--qemu-img I] [--guest DIR]
                                     [--transactions N] [--accel tcg|kvm] [--main-loop] [--gdb]

--main-loop exports the node in the daemon's main loop instead (the control:
no hang).  --gdb prints, on a hang, the export's vhost-user server and its
BlockBackend from gdb on the live daemon (needs gdb and QEMU's debug info).
Exit status: 1 hung (reproduced), 0 every transaction answered, 2 bad input.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))  # qmp_lite, guest_lite
from guest_lite import FIO, Guest, bad_input, newest_guest  # noqa: E402
from qmp_lite import Qmp, end, launch  # noqa: E402

ANSWER_S = 20.0  # a transaction not answered by then is a hang
GDB = [
    "set print pretty on",
    "p ((VuBlkExport *)block_exports.lh_first)->vu_server.in_flight",
    "p ((VuBlkExport *)block_exports.lh_first)->vu_server.quiescing",
    "p ((VuBlkExport *)block_exports.lh_first)->vu_server.co_trip",
    "p ((VuBlkExport *)block_exports.lh_first)->export.blk->quiesce_counter",
    "p ((VuBlkExport *)block_exports.lh_first)->export.blk->disable_request_queuing",
    "p ((VuBlkExport *)block_exports.lh_first)->export.blk->queued_requests",
    "p ((VuBlkExport *)block_exports.lh_first)->export.blk->in_flight",
    "p ((VuBlkExport *)block_exports.lh_first)->export.blk->root->bs->in_flight",
    "p ((VuBlkExport *)block_exports.lh_first)->export.blk->root->bs->file->bs->in_flight",
    "p ((VuBlkExport *)block_exports.lh_first)->vu_server.vu_dev.vq[0].inuse",
    "thread apply 1 bt 8",
]


def show_hang(pid: int) -> None:
    if not shutil.which("gdb"):
        print("(no gdb)")
        return
    args = ["gdb", "-p", str(pid), "-batch", "-nx", *(a for line in GDB for a in ("-ex", line))]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False).stdout
    print("\n".join(line for line in out.splitlines() if not line.startswith(("[New", "[Thread"))))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--qsd", default=shutil.which("qemu-storage-daemon"))
    p.add_argument("--qemu", default=shutil.which("qemu-system-x86_64"))
    p.add_argument("--qemu-img", default=shutil.which("qemu-img"))
    p.add_argument("--guest", default=newest_guest(), help="the txnstorm guest dir (make guest)")
    p.add_argument("--transactions", type=int, default=40)
    p.add_argument("--accel", default="tcg", choices=("tcg", "kvm"))
    p.add_argument("--main-loop", action="store_true", help="the control: the export in the daemon's main loop")
    p.add_argument("--gdb", action="store_true", help="on a hang, the export's state from gdb")
    args = p.parse_args()
    problem = bad_input({"--qsd": args.qsd, "--qemu": args.qemu, "--qemu-img": args.qemu_img}, args.guest)
    if problem:
        print(f"KI-11/reproduce.py: {problem}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="ki11-") as tmp:
        subprocess.run([args.qemu_img, "create", "-q", "-f", "qcow2", f"{tmp}/disk0.qcow2", "64M"], check=True)
        iothread = "" if args.main_loop else ",iothread=io0"
        daemon = launch(
            [args.qsd, "--object", "iothread,id=io0",
             "--blockdev", f"driver=file,node-name=disk0-file,filename={tmp}/disk0.qcow2",
             "--blockdev", "driver=qcow2,node-name=disk0,file=disk0-file",
             "--export", f"type=vhost-user-blk,id=exp0,node-name=disk0,writable=on,"
                         f"addr.type=unix,addr.path={tmp}/vhost.sock{iothread}",
             "--chardev", f"socket,id=qmp0,path={tmp}/qsd.sock,server=on,wait=off", "--monitor", "chardev=qmp0"],
            cwd=tmp,
        )  # fmt: skip
        guest = Guest(args.guest, tmp, args.accel, machine="pc,memory-backend=ram0")
        vm = None
        try:
            qsd = Qmp(f"{tmp}/qsd.sock", echo=False)
            # The daemon maps the guest's RAM: shared memory.
            vm = launch([args.qemu, *guest.args, "-object", "memory-backend-memfd,id=ram0,size=512M,share=on",
                         "-chardev", f"socket,id=vhost0,path={tmp}/vhost.sock",
                         "-device", "vhost-user-blk-pci,id=disk0-dev,chardev=vhost0"], cwd=tmp)  # fmt: skip
            if not guest.wait_ready(vm):
                return 2
            # the daemon's export answers GET_ID with "vhost_user_blk"
            find = "for s in /sys/block/vd*; do [ $(cat $s/serial) = vhost_user_blk ] && ln -sf /dev/${s##*/} /tmp/d;"
            guest.ssh(find + " done; " + FIO.format(dev="/tmp/d"))
            time.sleep(2)
            where = "the daemon's main loop" if args.main_loop else "an iothread"
            print(f"guest writing to the export in {where}; {args.transactions} transactions")
            for number in range(1, args.transactions + 1):
                action = {"type": "block-dirty-bitmap-add", "data": {"node": "disk0", "name": f"b{number}"}}
                try:
                    qsd.cmd_within(ANSWER_S, "transaction", actions=[action])
                except TimeoutError:
                    print(f"HANG: transaction {number} not answered within {ANSWER_S:.0f} s")
                    if args.gdb:
                        show_hang(daemon.pid)
                    print("REPRODUCED")
                    return 1
                time.sleep(0.5)  # the guest writes again
            print(f"not reproduced: {args.transactions} transactions answered")
            return 0
        finally:
            if vm is not None:
                end(vm)
            print(end(daemon)[-2000:], end="")


if __name__ == "__main__":
    sys.exit(main())
