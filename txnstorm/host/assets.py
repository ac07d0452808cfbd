"""The guest: locate it in the cache, verify its sha256 manifest, or build it.

A guest is built by ``guests/<recipe>/build.sh OUTDIR`` from Debian packages
only.  The cache entry is named after the recipe and a digest of the recipe's
files, so editing the recipe yields a new entry.  ``manifest.json`` records
the sha256 and size of every artifact plus the recipe's build-info (package
versions); it is written last, after the artifacts, and the entry appears by
an atomic rename, so a half-built entry is never trusted.  A truncated or
altered artifact is detected before every use and rebuilt with a message.
Each use touches the entry; entries of the same recipe with another digest
(older recipe versions, other branches) are pruned after a build once
unused for ``PRUNE_AFTER_DAYS``: a plain Debian entry is ~700 MB.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from txnstorm import REPO
from txnstorm.errors import UserError
from txnstorm.host.cachedir import writable_cache_root
from txnstorm.host.scratch import make_private_dir, sweep_stale

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
REQUIRED = ("vmlinux", "id_ed25519", "id_ed25519.pub", "host_key.pub", "build-info.json")
INITRD_NAMES = ("initramfs.cpio", "initramfs.cpio.gz")
GUESTS_DIR = REPO / "guests"
PRUNE_AFTER_DAYS = 7


@dataclass(frozen=True)
class BootFiles:
    """What QEMU boots the guest from: its kernel, initrd and kernel command line."""

    kernel: Path
    initrd: Path
    append: str


class CacheProblem(Exception):
    """The cache entry is missing or cannot be trusted; the message says why."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def recipe_digest(recipe_dir: Path) -> str:
    """sha256 over the recipe's file names and contents (what the build reads).

    A recipe that uses another one's files names it in a ``uses`` file (one
    recipe per line); those files count too, so editing them rebuilds it.
    """
    h = hashlib.sha256()
    uses = recipe_dir / "uses"
    dirs = [recipe_dir] + ([recipe_dir.parent / n for n in uses.read_text().split()] if uses.is_file() else [])
    for base in dirs:
        for path in sorted(p for p in base.rglob("*") if p.is_file()):
            if "__pycache__" in path.parts:
                continue
            name = path.relative_to(base) if base == recipe_dir else f"{base.name}/{path.relative_to(base)}"
            h.update(str(name).encode() + b"\0")
            h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


@dataclass(frozen=True)
class GuestImage:
    directory: Path
    manifest: dict[str, Any]

    @property
    def build_info(self) -> dict[str, Any]:
        return self.manifest["build_info"]

    @property
    def initrd(self) -> Path:
        for name in INITRD_NAMES:
            if name in self.manifest["files"]:
                return self.directory / name
        raise CacheProblem("manifest lists no initramfs")

    def boot_files(self) -> BootFiles:
        return BootFiles(self.directory / "vmlinux", self.initrd, self.build_info["append"])

    @property
    def private_key(self) -> Path:
        return self.directory / "id_ed25519"

    @property
    def host_key(self) -> str:
        return (self.directory / "host_key.pub").read_text().strip()

    @property
    def digest(self) -> str:
        """One hash naming this exact guest (for caches keyed by guest)."""
        return hashlib.sha256(json.dumps(self.manifest["files"], sort_keys=True).encode()).hexdigest()


def write_manifest(directory: Path, recipe: str, digest: str) -> dict[str, Any]:
    files = {}
    for path in sorted(p for p in directory.iterdir() if p.is_file() and p.name != MANIFEST):
        files[path.name] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    build_info = json.loads((directory / "build-info.json").read_text())
    manifest = {
        "format": MANIFEST_FORMAT,
        "recipe": recipe,
        "recipe_sha256": digest,
        "built_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "build_info": build_info,
        "files": files,
    }
    tmp = directory / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.rename(directory / MANIFEST)
    return manifest


def verify(directory: Path, digest: str | None = None) -> dict[str, Any]:
    """Return the manifest if every artifact matches it; else raise CacheProblem."""
    manifest_path = directory / MANIFEST
    if not directory.is_dir():
        raise CacheProblem(f"{directory} does not exist")
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise CacheProblem(f"{manifest_path} is missing (partial build?)") from None
    except (OSError, ValueError) as exc:
        raise CacheProblem(f"{manifest_path} is unreadable ({exc})") from None
    if manifest.get("format") != MANIFEST_FORMAT:
        raise CacheProblem(f"{manifest_path} has format {manifest.get('format')}, expected {MANIFEST_FORMAT}")
    if digest and manifest.get("recipe_sha256") != digest:
        raise CacheProblem("built from another version of the recipe")
    files = manifest.get("files", {})
    for name in REQUIRED:
        if name not in files:
            raise CacheProblem(f"manifest lists no {name}")
    if not any(name in files for name in INITRD_NAMES):
        raise CacheProblem("manifest lists no initramfs")
    for name, meta in files.items():
        path = directory / name
        if not path.is_file():
            raise CacheProblem(f"{name} is missing")
        if path.stat().st_size != meta["size"]:
            raise CacheProblem(f"{name} is {path.stat().st_size} bytes, manifest says {meta['size']} (truncated?)")
        if sha256_file(path) != meta["sha256"]:
            raise CacheProblem(f"{name} sha256 differs from the manifest")
    return manifest


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def build(recipe_dir: Path, final: Path, digest: str, say: Callable[[str], None]) -> GuestImage:
    """Build ``recipe_dir``'s guest into the cache entry ``final`` (atomically)."""
    recipe, root = recipe_dir.name, final.parent
    sweep_stale(root)
    workdir = make_private_dir(f"build-{recipe}", base=root)
    outdir = workdir / "out"
    log_path = root / f"build-{recipe}.log"
    say(f"building guest '{recipe}' into {final} (log: {log_path}) ...")
    try:
        with open(log_path, "w") as log_file:
            proc = subprocess.run(
                ["bash", str(recipe_dir / "build.sh"), str(outdir)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # downloads and the fio source build are cached beside the guests
                env={**os.environ, "TXNSTORM_BUILD_CACHE": str(root.parent / "build-cache")},
            )
        if proc.returncode != 0:
            raise UserError(
                f"guest build failed (exit {proc.returncode}); last lines:\n{_tail(log_path)}\nfull log: {log_path}"
            )
        manifest = write_manifest(outdir, recipe, digest)
        verify(outdir, digest)
        if final.exists():
            shutil.rmtree(final)
        outdir.rename(final)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return GuestImage(final, manifest)


def ensure_guest(
    recipe: str = "tiny", allow_build: bool = True, say: Callable[[str], None] = print, *, cache: Path
) -> GuestImage:
    """The verified guest for ``recipe`` in the cache root ``cache``; built (or rebuilt) when allowed."""
    recipe_dir = GUESTS_DIR / recipe
    if not (recipe_dir / "build.sh").is_file():
        raise UserError(f"no guest recipe '{recipe}' (expected {recipe_dir}/build.sh)")
    digest = recipe_digest(recipe_dir)
    root = writable_cache_root(cache) / "guests"
    final = root / f"{recipe}-{digest[:12]}"
    with _locked(root):
        try:
            image = GuestImage(final, verify(final, digest))
            os.utime(final)  # last used: see prune_superseded
            return image
        except CacheProblem as problem:
            if final.exists():
                say(f"guest cache {final} is corrupt: {problem}; rebuilding")
            elif not allow_build:
                raise UserError(f"guest '{recipe}' is not built yet; run 'make guest'") from None
            if not allow_build:
                raise UserError(f"guest cache {final} is corrupt ({problem}); run 'make guest' to rebuild") from None
            image = build(recipe_dir, final, digest, say)
            for old in prune_superseded(root, recipe, keep=final):
                say(f"removed guest cache {old} (superseded, unused for {PRUNE_AFTER_DAYS} days)")
            return image


def prune_superseded(root: Path, recipe: str, keep: Path, now: float | None = None) -> list[Path]:
    """Remove ``recipe``'s other cache entries not used for PRUNE_AFTER_DAYS.

    Recent ones stay: another checkout (a branch, a bisect) may use them."""
    cutoff = (now if now is not None else datetime.datetime.now().timestamp()) - PRUNE_AFTER_DAYS * 86400
    removed = []
    for entry in root.glob(f"{recipe}-*"):
        if entry == keep or not entry.is_dir() or not (entry / MANIFEST).is_file():
            continue
        if entry.name[len(recipe) + 1 :].isalnum() and entry.stat().st_mtime < cutoff:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed
