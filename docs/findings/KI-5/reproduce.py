#!/usr/bin/env python3
"""KI-5 standalone: one transaction backs up a node and, with blockdev-backup,
the copy-before-write filter that the first action inserts; QEMU aborts in
bdrv_do_drained_end.  Needs only qemu-system-x86_64 and qemu-img (no guest,
no device: a bare -machine none).  Python 3 standard library only.

    docs/findings/KI-5/reproduce.py [QEMU [QEMU_IMG]] [--separate]

Exit status: 1 if QEMU aborted (reproduced), 0 if it survived, 2 on bad input.
With --separate, the two backups are sent as two commands instead (the
error QEMU gives for the second one, without the transaction's abort path).
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))  # qmp_lite, guest_lite
from qmp_lite import Qmp, aborted, binaries, end, launch  # noqa: E402


def main() -> int:
    given = binaries("KI-5/reproduce.py", __doc__ or "", ("--separate",), ("qemu-system-x86_64", "qemu-img"),
                     sys.argv[1:])  # fmt: skip
    if isinstance(given, int):
        return given
    qemu, qemu_img, flags = given
    separate = "--separate" in flags
    with tempfile.TemporaryDirectory(prefix="ki5-") as tmp:
        for name in ("disk0", "tgt"):
            subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", f"{tmp}/{name}.qcow2", "64M"], check=True)
        disk0 = {"driver": "qcow2", "node-name": "disk0", "file": {"driver": "file", "filename": f"{tmp}/disk0.qcow2"}}
        proc = launch(
            [qemu, "-machine", "none", "-nodefaults", "-display", "none",
             "-qmp", f"unix:{tmp}/qmp.sock,server=on,wait=off", "-blockdev", json.dumps(disk0)],
            cwd=tmp,
        )  # fmt: skip
        try:
            qmp = Qmp(f"{tmp}/qmp.sock")
            qmp.cmd("blockdev-add", driver="qcow2", **{"node-name": "tgt"},
                    file={"driver": "file", "filename": f"{tmp}/tgt.qcow2"})  # fmt: skip
            first = {
                "device": "disk0",
                "job-id": "backup0",
                "sync": "full",
                "target": f"{tmp}/backup0.qcow2",
                "format": "qcow2",
                "mode": "absolute-paths",
                "filter-node-name": "backup0-cbw",
                "speed": 1,
            }
            second = {"device": "backup0-cbw", "job-id": "backup1", "sync": "full", "target": "tgt",
                      "filter-node-name": "backup1-cbw"}  # fmt: skip
            if separate:
                qmp.cmd("drive-backup", **first)
                answer = qmp.cmd("blockdev-backup", **second)
            else:
                answer = qmp.cmd("transaction", actions=[{"type": "drive-backup", "data": first},
                                                         {"type": "blockdev-backup", "data": second}])  # fmt: skip
            answered_after = answer is not None and qmp.cmd("query-block-jobs") is not None
        except BaseException:
            end(proc)
            raise
        return aborted(proc, "QEMU", answered_after=answered_after)


if __name__ == "__main__":
    sys.exit(main())
