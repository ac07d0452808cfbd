"""What the QEMU under test can do, from its own QMP schema.

Probed once per QEMU binary (a ``-machine none`` QEMU, no guest) and cached
beside the guest cache, keyed by the binary's path, size and mtime.  Tests
ask ``require(...)`` and are CANCELled with the missing feature named when
this QEMU lacks it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from txnstorm.errors import QemuFailure
from txnstorm.host.scratch import private_dir
from txnstorm.host.sut import SystemUnderTest
from txnstorm.vm.qemu_process import QMP_SOCKET, Keeping, QemuProcess
from txnstorm.vm.topology import Topology

# The devices whose properties a topology may need (iothread-vq-mapping, ...).
PROBED_DEVICES = ("virtio-blk-pci", "virtio-scsi-pci", "vhost-user-blk-pci")


@dataclass(frozen=True)
class Capabilities:
    version: str
    commands: frozenset[str]
    transaction_actions: frozenset[str]
    aio_modes: frozenset[str] = frozenset({"threads"})  # the file driver's aio= values this QEMU was built with
    devices: frozenset[str] = frozenset()  # the device types this QEMU was built with (qom-list-types)
    # {device type: its properties} (device-list-properties) for the PROBED_DEVICES this QEMU has
    device_props: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def missing(
        self, commands: tuple[str, ...] = (), actions: tuple[str, ...] = (), aio: tuple[str, ...] = (),
        devices: tuple[str, ...] = (), props: Mapping[str, Sequence[str]] | None = None,
    ) -> list[str]:  # fmt: skip
        """What of these this QEMU lacks, one phrase each; ``props``: {device type: properties}."""
        gone = [f"QMP command {c}" for c in commands if c not in self.commands]
        gone += [f"device {d}" for d in devices if d not in self.devices]
        for device, names in (props or {}).items():
            have = self.device_props.get(device, frozenset())
            gone += [f"{device} property {p}" for p in names if p not in have]
        gone += [f"transaction action {a}" for a in actions if a not in self.transaction_actions]
        gone += [f"aio={a} (built without it)" for a in aio if a not in self.aio_modes]
        return gone

    def describe(self) -> str:
        return (
            f"QEMU {self.version}: {len(self.commands)} QMP commands, "
            f"transaction actions: {', '.join(sorted(self.transaction_actions))}"
        )


def needs_of(topology: Topology) -> dict[str, Any]:
    """What ``topology``'s disks need of QEMU, as ``Capabilities.missing()`` keywords."""
    mapped = {"virtio-scsi-pci" if d.controller else "virtio-blk-pci" for d in topology.disks if d.vq_mapping}
    return {
        "aio": sorted({d.aio for d in topology.disks}),
        "devices": (["virtio-scsi-pci", "scsi-hd"] if topology.scsi_controllers else [])
        + (["vhost-user-blk-pci"] if topology.on_daemon else []),
        "props": {device: ["iothread-vq-mapping"] for device in sorted(mapped)},
    }


EXPORT_TYPES = frozenset({"nbd", "vhost-user-blk", "fuse", "vduse-blk"})  # BlockExportType's values so far


def export_types(schema: list[dict[str, Any]]) -> frozenset[str]:
    """The block export types a QEMU (qemu-storage-daemon) was built with: BlockExportType, known by
    its values (always "nbd"; the others only when built with them)."""
    for entry in schema:
        if entry.get("meta-type") != "enum":
            continue
        values = {m["name"] if isinstance(m, dict) else m for m in entry.get("members", entry.get("values", []))}
        if "nbd" in values and values <= EXPORT_TYPES:
            return frozenset(values)
    return frozenset()


def from_schema(version: str, schema: list[dict[str, Any]]) -> Capabilities:
    """Commands, and the transaction action kinds (the enum that names them)."""
    commands = frozenset(e["name"] for e in schema if e.get("meta-type") == "command")
    actions: frozenset[str] = frozenset()
    aio: frozenset[str] = frozenset({"threads"})
    for entry in schema:  # enums are unnamed in the schema: known by their values
        if entry.get("meta-type") != "enum":
            continue
        values = {m["name"] if isinstance(m, dict) else m for m in entry.get("members", entry.get("values", []))}
        if {"blockdev-snapshot-sync", "abort"} <= values:
            actions = frozenset(values)
        elif {"threads", "native"} <= values:  # BlockdevAioOptions; io_uring only when built with liburing
            aio = frozenset(values)
    return Capabilities(version, commands, actions, aio)


def _cache_file(sut: SystemUnderTest, cache: Path) -> Path:
    st = sut.qemu.stat()
    key = f"{sut.qemu}:{st.st_size}:{st.st_mtime_ns}"
    return cache / "caps" / (hashlib.sha256(key.encode()).hexdigest()[:16] + ".json")


class SchemaProbe(QemuProcess):
    """QEMU with no machine, stopped: only its QMP answers (the schema, devices, properties)."""

    STARTING = "while its capabilities were probed"  # a QEMU that dies here dies before any test

    def _command_line(self, rundir: Path) -> list[str]:
        args = [str(self.binary), "-machine", "none", "-nodefaults", "-display", "none", "-S"]
        return args + ["-chardev", f"socket,id=qmp0,path={rundir / QMP_SOCKET}", "-mon", "chardev=qmp0,mode=control"]


def probe(sut: SystemUnderTest, *, cache: Path, keeping: Keeping | None = None) -> Capabilities:
    """What the QEMU under test can do (its QMP schema, devices and their properties), kept in the
    cache root ``cache`` per binary; ``keeping``: the user's QMP window and cores, as for any QEMU."""
    cache = _cache_file(sut, cache)
    try:
        data = json.loads(cache.read_text())
        return Capabilities(
            data["version"], frozenset(data["commands"]), frozenset(data["actions"]), frozenset(data["aio"]),
            frozenset(data["devices"]), {d: frozenset(p) for d, p in data["device_props"].items()},
        )  # fmt: skip
    except (OSError, ValueError, KeyError):
        pass
    try:
        with private_dir("caps") as logdir, SchemaProbe(sut.qemu, logdir, keeping) as qemu:
            version = qemu.cmd("query-version")["qemu"]
            schema = qemu.cmd("query-qmp-schema")
            devices = frozenset(t["name"] for t in qemu.cmd("qom-list-types", implements="device"))
            device_props = {
                d: frozenset(p["name"] for p in qemu.cmd("device-list-properties", typename=d))
                for d in PROBED_DEVICES if d in devices
            }  # fmt: skip
    except QemuFailure as exc:  # QEMU that cannot answer its schema: a finding about it, before any test
        exc.stage = exc.stage or SchemaProbe.STARTING
        raise
    caps = replace(from_schema(f"{version['major']}.{version['minor']}.{version['micro']}", schema),
                   devices=devices, device_props=device_props)  # fmt: skip
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(
        json.dumps(
            {
                "version": caps.version,
                "commands": sorted(caps.commands),
                "actions": sorted(caps.transaction_actions),
                "aio": sorted(caps.aio_modes),
                "devices": sorted(caps.devices),
                "device_props": {d: sorted(p) for d, p in caps.device_props.items()},
            }  # fmt: skip
        )
    )
    return caps
