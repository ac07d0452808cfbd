"""The Avocado base class for scenario tests.

It resolves the QEMU under test (``-p qemu=`` or ``QEMU``), the verified
guest, the accelerator (``-p accel=`` or ``ACCEL``, default auto), and gives
each test a scratch dir for images inside its log dir: kept when the test
does not PASS (the evidence), removed when it does.

Machines live inside the test method (``with self.boot(...)``): Avocado runs
``tearDown`` in another thread with another event loop, so tearDown only
kills leftovers by PID.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from avocado import Test

from . import accel, assets, sut
from .boot import Booted, booted
from .errors import UserError
from .images import QemuImg
from .machine import Machine
from .oracle import Comparison, compare_images
from .scratch import sweep_stale
from .topology import Topology


class TxnstormTest(Test):
    """:avocado: disable"""

    def setUp(self) -> None:
        sweep_stale()
        self._machines: list[Machine] = []
        try:
            self.sut = sut.resolve(self.params.get("qemu", default=None), self.params.get("qemu_img", default=None))
            self.guest_image = assets.ensure_guest(allow_build=False, say=self.log.info)
            requested = self.params.get("accel", default=os.environ.get("ACCEL", "auto"))
            self.accel = accel.choose(requested, self.sut, self.guest_image, say=self.log.info)
        except UserError as exc:
            self.cancel(str(exc))
        self.log.info("system under test: %s, accel %s (%s)", self.sut.describe(), self.accel.accel, self.accel.reason)
        self.qemu_img = QemuImg(self.sut.qemu_img)
        self.scratch = Path(self.logdir) / "scratch"
        self.scratch.mkdir(exist_ok=True)

    def tearDown(self) -> None:
        for vm in getattr(self, "_machines", []):
            vm.kill()
        if not hasattr(self, "scratch"):
            return
        if self.status == "PASS":
            shutil.rmtree(self.scratch, ignore_errors=True)
        else:
            self.log.info("images kept for diagnosis in %s", self.scratch)

    # -- verbs -------------------------------------------------------------
    def create_images(self, topology: Topology) -> dict[str, Path]:
        return {d.name: self.qemu_img.create(self.scratch / f"{d.name}.{d.fmt}", d.size, d.fmt) for d in topology.disks}

    @contextlib.contextmanager
    def boot(self, topology: Topology) -> Iterator[Booted]:
        images = self.create_images(topology)
        with booted(self.sut, topology, self.guest_image, self.accel.accel, Path(self.logdir), images) as b:
            self._machines.append(b.vm)
            self.log.info("booted %s in %.2f s", topology.name, b.boot_seconds)
            b.vm.images = images
            yield b

    def compare(self, a: Path, b: Path) -> Comparison:
        result = compare_images(self.qemu_img, a, b)
        self.log.info("oracle: %s", result.describe())
        with open(Path(self.logdir) / "oracle.log", "a") as f:
            f.write(result.describe() + "\n")
            if result.output:
                f.write(f"  qemu-img: {result.output}\n")
        return result
