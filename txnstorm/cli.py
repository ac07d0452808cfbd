"""Command-line entry points (thin: the work is in the library).

    txnstorm preflight     check QEMU, qemu-img, guest cache and accel; one line each
                           (--build-guest: build a missing or corrupt guest)
    txnstorm guest         build the guest if missing or corrupt, print its dir
    txnstorm boot [-n N]   boot the guest N times and print boot-to-SSH seconds
    txnstorm sweep         remove private temp dirs of runs that died

User errors print one line and exit 2; Ctrl-C exits 130 after cleaning up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from . import accel, assets, sut
from .errors import TxnstormError, UserError
from .scratch import sweep_stale
from .topology import TWO_DISKS_ONE_IOTHREAD


def _say(msg: str) -> None:
    print(f"txnstorm: {msg}", flush=True)


def cmd_guest(args: argparse.Namespace) -> int:
    image = assets.ensure_guest(args.recipe, allow_build=not args.verify_only, say=_say)
    _say(f"guest '{args.recipe}' ok: {image.directory}")
    return 0


def cmd_preflight(args: argparse.Namespace) -> int:
    system = sut.resolve()  # first: a wrong QEMU must not cost a guest build
    _say(f"system under test: {system.describe()}")
    image = assets.ensure_guest(args.recipe, allow_build=args.build_guest, say=_say)
    _say(f"guest: {image.directory} (kernel {image.build_info.get('kernel_release', '?')})")
    choice = accel.choose(os.environ.get("ACCEL", "auto"), system, image, say=_say)
    _say(f"accel: {choice.accel} ({choice.reason})")
    return 0


def cmd_boot(args: argparse.Namespace) -> int:
    from .boot import booted
    from .images import QemuImg

    system = sut.resolve()
    image = assets.ensure_guest(args.recipe, allow_build=False, say=_say)
    choice = accel.choose(os.environ.get("ACCEL", "auto"), system, image, say=_say)
    topology = TWO_DISKS_ONE_IOTHREAD
    times = []
    with tempfile.TemporaryDirectory(prefix="txnstorm-boot-") as tmp:
        img = QemuImg(system.qemu_img)
        images = {d.name: img.create(Path(tmp) / f"{d.name}.qcow2", d.size) for d in topology.disks}
        for i in range(args.count):
            with booted(system, topology, image, choice.accel, Path(tmp) / f"boot{i}", images) as b:
                times.append(b.boot_seconds)
                _say(f"boot {i + 1}: {b.boot_seconds:.2f} s to SSH")
    _say(f"boot-to-SSH ({choice.accel}): median {statistics.median(times):.2f} s over {len(times)}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    for path in sweep_stale():
        _say(f"removed stale {path}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="txnstorm", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("guest", help="build or verify the cached guest")
    g.add_argument("--recipe", default="tiny")
    g.add_argument("--verify-only", action="store_true", help="fail instead of building")
    g.set_defaults(func=cmd_guest)
    pf = sub.add_parser("preflight", help="check QEMU, qemu-img, guest and accelerator")
    pf.add_argument("--recipe", default="tiny")
    pf.add_argument("--build-guest", action="store_true", help="build the guest if missing or corrupt")
    pf.set_defaults(func=cmd_preflight)
    b = sub.add_parser("boot", help="measure boot-to-SSH")
    b.add_argument("-n", "--count", type=int, default=1)
    b.add_argument("--recipe", default="tiny")
    b.set_defaults(func=cmd_boot)
    s = sub.add_parser("sweep", help="remove temp dirs of dead runs")
    s.set_defaults(func=cmd_sweep)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"txnstorm: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("txnstorm: interrupted", file=sys.stderr)
        return 130
    except TxnstormError as exc:
        print(f"txnstorm: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
