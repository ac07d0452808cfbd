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

import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))  # qmp_lite, guest_lite
from qmp_lite import Qmp, aborted, binaries, end, launch  # noqa: E402


def main() -> int:
    given = binaries("KI-10/reproduce.py", __doc__ or "", ("--plain", "--main-loop", "--fixed-iothread"),
                     ("qemu-storage-daemon", "qemu-img"), sys.argv[1:])  # fmt: skip
    if isinstance(given, int):
        return given
    qsd, qemu_img, flags = given
    iothread = [] if "--main-loop" in flags else [",iothread=io0"]
    if "--fixed-iothread" in flags:
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
            if "--plain" in flags:
                answer = qmp.cmd("drive-backup", **backup)
            else:
                answer = qmp.cmd("transaction", actions=[{"type": "drive-backup", "data": backup}])
            answered_after = answer is not None and qmp.cmd("query-block-jobs") is not None
        except BaseException:
            end(proc)
            raise
        return aborted(proc, "qemu-storage-daemon", answered_after=answered_after)


if __name__ == "__main__":
    sys.exit(main())
