#!/usr/bin/env python3
"""KI-10 standalone: qemu-storage-daemon exports one qcow2 node over NBD in an
iothread; a drive-backup of that node (here in a transaction, or alone with
--plain) aborts the daemon in bdrv_insert_node before any client connected.
Needs only qemu-storage-daemon and qemu-img.  Python 3 standard library only.

    docs/findings/KI-10/reproduce.py [QEMU_STORAGE_DAEMON [QEMU_IMG]] [--plain] [--main-loop] [--fixed-iothread]

--main-loop exports the node in the daemon's main loop instead (the control:
no iothread, no abort); --fixed-iothread exports it with fixed-iothread=on.
Exit status: 1 if the daemon aborted (reproduced), 0 if it survived, 2 on
bad input.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))  # qmp_lite, guest_lite
from qmp_lite import Qmp, aborted, end, launch  # noqa: E402


def main() -> int:
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(__doc__)
        return 0
    unknown = [a for a in sys.argv[1:] if a.startswith("-") and a not in ("--plain", "--main-loop", "--fixed-iothread")]
    if unknown:
        print(f"KI-10/reproduce.py: unknown option {unknown[0]} (--help lists them)", file=sys.stderr)
        return 2
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    qsd = args[0] if args else shutil.which("qemu-storage-daemon")
    qemu_img = args[1] if len(args) > 1 else shutil.which("qemu-img")
    if not qsd or not qemu_img:
        print("usage: KI-10/reproduce.py [QEMU_STORAGE_DAEMON [QEMU_IMG]] (not on PATH)", file=sys.stderr)
        return 2
    for path in (qsd, qemu_img):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            print(f"KI-10/reproduce.py: {path}: not an executable file", file=sys.stderr)
            return 2
    iothread = [] if "--main-loop" in sys.argv else [",iothread=io0"]
    if "--fixed-iothread" in sys.argv:
        iothread.append(",fixed-iothread=on")
    with tempfile.TemporaryDirectory(prefix="ki10-") as tmp:
        subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", f"{tmp}/disk0.qcow2", "64M"], check=True)
        proc = launch(
            [qsd, "--object", "iothread,id=io0",
             "--blockdev", f"driver=file,node-name=disk0-file,filename={tmp}/disk0.qcow2",
             "--blockdev", "driver=qcow2,node-name=disk0,file=disk0-file",
             "--nbd-server", f"addr.type=unix,addr.path={tmp}/nbd.sock",
             "--export", "type=nbd,id=exp0,node-name=disk0,name=disk0,writable=on" + "".join(iothread),
             "--chardev", f"socket,id=qmp0,path={tmp}/qmp.sock,server=on,wait=off", "--monitor", "chardev=qmp0"],
            cwd=tmp,
        )  # fmt: skip
        try:
            qmp = Qmp(f"{tmp}/qmp.sock")
            backup = {"device": "disk0", "job-id": "backup0", "sync": "full", "target": f"{tmp}/backup0.qcow2",
                      "format": "qcow2"}  # fmt: skip
            if "--plain" in sys.argv:
                answer = qmp.cmd("drive-backup", **backup)
            else:
                answer = qmp.cmd("transaction", actions=[{"type": "drive-backup", "data": backup}])
            if answer is not None:
                qmp.cmd("query-block-jobs")
        except BaseException:
            end(proc)
            raise
        return aborted(proc, "qemu-storage-daemon")


if __name__ == "__main__":
    sys.exit(main())
