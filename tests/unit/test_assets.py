import json
import os
import time
from pathlib import Path

import pytest

from txnstorm.host import assets
from txnstorm.host.assets import CacheProblem, recipe_digest, verify, write_manifest


@pytest.fixture
def built(tmp_path: Path) -> Path:
    out = tmp_path / "tiny-abc"
    out.mkdir()
    (out / "vmlinux").write_bytes(b"\x7fELF" + b"k" * 1000)
    (out / "initramfs.cpio").write_bytes(b"070701" + b"i" * 1000)
    for name in ("id_ed25519", "id_ed25519.pub", "host_key.pub"):
        (out / name).write_text(f"{name}\n")
    (out / "build-info.json").write_text(
        json.dumps({"recipe": "tiny", "append": "console=ttyS0", "packages": {"busybox-static": "1:1.35"}})
    )
    write_manifest(out, "tiny", "digest1")
    return out


def test_fresh_build_verifies_and_records_packages(built):
    manifest = verify(built, "digest1")
    assert manifest["build_info"]["packages"] == {"busybox-static": "1:1.35"}
    assert set(manifest["files"]) >= {"vmlinux", "initramfs.cpio", "id_ed25519", "build-info.json"}
    image = assets.GuestImage(built, manifest)
    assert image.boot_files().initrd.name == "initramfs.cpio"
    assert image.boot_files().append == "console=ttyS0"


def test_truncated_initramfs_is_detected(built):
    with open(built / "initramfs.cpio", "r+b") as f:
        f.truncate(10)
    with pytest.raises(CacheProblem, match="initramfs.cpio is 10 bytes.*truncated"):
        verify(built)


def test_altered_artifact_is_detected_by_sha256(built):
    data = bytearray((built / "vmlinux").read_bytes())
    data[-1] ^= 0xFF
    (built / "vmlinux").write_bytes(bytes(data))
    with pytest.raises(CacheProblem, match="vmlinux sha256"):
        verify(built)


def test_missing_manifest_means_partial_build(built):
    (built / "manifest.json").unlink()
    with pytest.raises(CacheProblem, match="partial"):
        verify(built)


def test_corrupt_manifest_is_detected(built):
    (built / "manifest.json").write_text("{not json")
    with pytest.raises(CacheProblem, match="unreadable"):
        verify(built)


def test_missing_artifact_is_detected(built):
    (built / "host_key.pub").unlink()
    with pytest.raises(CacheProblem, match="host_key.pub is missing"):
        verify(built)


def test_other_recipe_version_is_not_trusted(built):
    with pytest.raises(CacheProblem, match="another version"):
        verify(built, "digest2")


def test_recipe_digest_follows_content(tmp_path):
    (tmp_path / "build.sh").write_text("echo a\n")
    first = recipe_digest(tmp_path)
    assert recipe_digest(tmp_path) == first
    (tmp_path / "build.sh").write_text("echo b\n")
    assert recipe_digest(tmp_path) != first


def test_corrupt_cache_is_rebuilt_with_a_message(tmp_path, monkeypatch):
    """ensure_guest: a corrupt entry is reported and rebuilt by the recipe."""
    recipe = tmp_path / "guests" / "fake"
    recipe.mkdir(parents=True)
    (recipe / "build.sh").write_text(
        'set -e; mkdir -p "$1"; cd "$1"; echo k > vmlinux; echo i > initramfs.cpio;'
        " for f in id_ed25519 id_ed25519.pub host_key.pub; do echo $f > $f; done;"
        ' echo \'{"append": "console=ttyS0"}\' > build-info.json\n'
    )
    monkeypatch.setattr(assets, "GUESTS_DIR", tmp_path / "guests")
    said: list[str] = []
    first = assets.ensure_guest("fake", say=said.append, cache=tmp_path / "cache")
    assert verify(first.directory)
    (first.directory / "initramfs.cpio").write_text("")
    second = assets.ensure_guest("fake", say=said.append, cache=tmp_path / "cache")
    assert any("corrupt" in s and "initramfs.cpio" in s for s in said)
    assert verify(second.directory)
    leftovers = [p.name for p in (tmp_path / "cache" / "guests").iterdir()]
    assert all(not name.startswith("txnstorm-build") for name in leftovers)


def test_failed_build_leaves_no_trusted_entry(tmp_path, monkeypatch):
    recipe = tmp_path / "guests" / "broken"
    recipe.mkdir(parents=True)
    (recipe / "build.sh").write_text(
        'mkdir -p "$1"; echo vmlinux > "$1/vmlinux"; echo "no kernel package" >&2; exit 3\n'
    )
    monkeypatch.setattr(assets, "GUESTS_DIR", tmp_path / "guests")
    with pytest.raises(assets.UserError, match="(?s)exit 3.*no kernel package"):
        assets.ensure_guest("broken", say=lambda s: None, cache=tmp_path / "cache")
    entries = [p.name for p in (tmp_path / "cache" / "guests").iterdir() if not p.name.startswith((".", "build-"))]
    assert entries == []


def test_unbuilt_guest_without_build_permission_is_a_user_error(tmp_path, monkeypatch):
    recipe = tmp_path / "guests" / "fake"
    recipe.mkdir(parents=True)
    (recipe / "build.sh").write_text("exit 1\n")
    monkeypatch.setattr(assets, "GUESTS_DIR", tmp_path / "guests")
    with pytest.raises(assets.UserError, match="make guest"):
        assets.ensure_guest("fake", allow_build=False, cache=tmp_path / "cache")


def test_a_recipe_that_uses_another_is_rebuilt_when_that_one_changes(tmp_path):
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "helper.py").write_text("v1\n")
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "build.sh").write_text("echo\n")
    (tmp_path / "bench" / "uses").write_text("tiny\n")
    first = recipe_digest(tmp_path / "bench")
    (tmp_path / "tiny" / "helper.py").write_text("v2\n")
    assert recipe_digest(tmp_path / "bench") != first


def test_superseded_entries_unused_for_a_week_are_pruned_recent_ones_kept(tmp_path):
    def entry(name: str, age_days: float) -> Path:
        path = tmp_path / name
        path.mkdir()
        (path / assets.MANIFEST).write_text("{}")
        when = time.time() - age_days * 86400
        os.utime(path, (when, when))
        return path

    keep, old, recent = entry("tiny-new", 30), entry("tiny-old", 8), entry("tiny-branch", 1)
    other_recipe = entry("debian-bench-old", 30)
    assert assets.prune_superseded(tmp_path, "tiny", keep=keep) == [old]
    assert keep.exists() and recent.exists() and other_recipe.exists() and not old.exists()
