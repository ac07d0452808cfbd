#!/usr/bin/env python3
"""Build-time helper for guests/tiny/build.sh (Python stdlib only).

Subcommands:
  apt-sources OUT             write a deb822 sources file (deb + deb-src) derived
                              from the machine's own apt sources
  vmlinux BZIMAGE OUT         extract the uncompressed ELF vmlinux from a bzImage
  moddeps MODDIR NAME...      print the .ko paths needed for NAME..., in load order
  kernel-release VMLINUX      print the kernel release string (from the banner)
  cpio ROOTDIR OUT            write ROOTDIR as a newc cpio archive (owner root,
                              fixed mtime, plus /dev/console), no root needed
  build-info OUT KEY=VAL...   write build-info.json: PKG:name=ver entries become
                              "packages", PKGFILE=path adds "name version" lines,
                              KEY:=JSON stores a JSON value
"""

import gzip
import json
import lzma
import os
import re
import stat
import struct
import sys


def die(msg):
    sys.stderr.write(f"tinyhelper: {msg}\n")
    sys.exit(1)


# --------------------------------------------------------------------------
# apt sources -> private deb + deb-src sources (deb822)
# --------------------------------------------------------------------------

def _deb822_stanzas(text):
    """Parse deb822 text into a list of [(field, value-with-continuations)]."""
    stanzas, cur = [], []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if cur:
                stanzas.append(cur)
            cur = []
            continue
        if line[0] in " \t" and cur:
            k, v = cur[-1]
            cur[-1] = (k, v + "\n" + line)
        elif ":" in line:
            k, v = line.split(":", 1)
            cur.append((k.strip(), v.strip()))
    if cur:
        stanzas.append(cur)
    return stanzas


# one-line "[option=value]" names -> deb822 field names
_ONELINE_OPTS = {"arch": "Architectures", "lang": "Languages", "target": "Targets",
                 "pdiffs": "PDiffs", "by-hash": "By-Hash", "trusted": "Trusted",
                 "signed-by": "Signed-By", "check-valid-until": "Check-Valid-Until",
                 "allow-insecure": "Allow-Insecure", "allow-weak": "Allow-Weak",
                 "allow-downgrade-to-insecure": "Allow-Downgrade-To-Insecure"}


def cmd_apt_sources(out, etc="/etc/apt"):
    """Write a deb822 file with 'Types: deb deb-src' for every enabled 'deb'
    source of this machine (/etc/apt/sources.list and sources.list.d)."""
    files = []
    if os.path.isfile(os.path.join(etc, "sources.list")):
        files.append(os.path.join(etc, "sources.list"))
    d = os.path.join(etc, "sources.list.d")
    if os.path.isdir(d):
        files += [os.path.join(d, f) for f in sorted(os.listdir(d))
                  if f.endswith(".list") or f.endswith(".sources")]
    result, seen = [], set()

    def add(fields):
        key = tuple(fields)
        if key in seen:
            return
        seen.add(key)
        result.append("Types: deb deb-src\n" +
                      "".join("{}: {}\n".format(*kv) for kv in fields))

    for path in files:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        if path.endswith(".sources"):
            for st in _deb822_stanzas(text):
                fields = dict((k.lower(), v) for k, v in st)
                if fields.get("enabled", "yes").lower() == "no":
                    continue
                if "deb" not in fields.get("types", "").split():
                    continue
                if "uris" not in fields or "suites" not in fields:
                    continue
                add([(k, v) for k, v in st
                     if k.lower() not in ("types", "enabled")])
            continue
        for raw_line in text.splitlines():
            line = raw_line.split("#", 1)[0].strip()
            if not line.startswith("deb "):
                continue
            rest = line[4:].strip()
            fields = []
            if rest.startswith("["):
                if "]" not in rest:
                    continue
                opts, rest = rest[1:].split("]", 1)
                for o in opts.split():
                    if "=" in o:
                        ok, ov = o.split("=", 1)
                        name = _ONELINE_OPTS.get(ok.lower(), ok.title())
                        fields.append((name, ov.replace(",", " ")))
            parts = rest.split()
            if len(parts) < 2:
                continue
            fields = [("URIs", parts[0]), ("Suites", parts[1])] + (
                [("Components", " ".join(parts[2:]))] if parts[2:] else []) + fields
            add(fields)
    if not result:
        die("no enabled 'deb' entries found in the apt sources under /etc/apt")
    with open(out, "w") as f:
        f.write("\n".join(result))


# --------------------------------------------------------------------------
# bzImage -> vmlinux
# --------------------------------------------------------------------------

def cmd_vmlinux(bzimage, out):
    with open(bzimage, "rb") as f:
        data = f.read()
    if data[0x202:0x206] != b"HdrS":
        die(f"{bzimage}: not a bzImage (no HdrS)")
    version = struct.unpack_from("<H", data, 0x206)[0]
    if version < 0x208:
        die(f"{bzimage}: boot protocol {version:#x} too old")
    setup_sects = data[0x1F1] or 4
    pm_start = (setup_sects + 1) * 512
    payload_offset, payload_length = struct.unpack_from("<II", data, 0x248)
    payload = data[pm_start + payload_offset:pm_start + payload_offset + payload_length]
    if payload.startswith(b"\xfd7zXZ\x00"):
        raw = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)
    elif payload.startswith(b"\x1f\x8b"):
        raw = gzip.decompress(payload)
    elif payload.startswith(b"\x28\xb5\x2f\xfd"):
        import subprocess
        raw = subprocess.run(["zstd", "-dc"], input=payload,
                             stdout=subprocess.PIPE, check=True).stdout
    elif payload.startswith(b"\x5d\x00\x00"):
        raw = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(payload)
    else:
        die(f"{bzimage}: unsupported payload compression (magic {payload[:6].hex()})")
    if raw[:4] != b"\x7fELF":
        die(f"{bzimage}: decompressed payload is not an ELF file")
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(raw)
    os.rename(tmp, out)


def cmd_kernel_release(vmlinux):
    with open(vmlinux, "rb") as f:
        data = f.read()
    m = re.search(rb"Linux version (\S+) \(", data)
    if not m:
        die(f"{vmlinux}: no 'Linux version' banner found")
    print(m.group(1).decode())


# --------------------------------------------------------------------------
# module dependencies from .modinfo
# --------------------------------------------------------------------------

def elf_section(path, name):
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        die(f"{path}: not a little-endian ELF64 file")
    e_shoff = struct.unpack_from("<Q", data, 0x28)[0]
    e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    secs = []
    for i in range(e_shnum):
        off = e_shoff + i * e_shentsize
        sh_name, _t, _fl, _addr, sh_offset, sh_size = struct.unpack_from(
            "<IIQQQQ", data, off)
        secs.append((sh_name, sh_offset, sh_size))
    stroff = secs[e_shstrndx][1]
    for sh_name, sh_offset, sh_size in secs:
        end = data.index(b"\0", stroff + sh_name)
        if data[stroff + sh_name:end].decode() == name:
            return data[sh_offset:sh_offset + sh_size]
    return None


def cmd_moddeps(moddir, names):
    index = {}
    for root, _dirs, files in os.walk(moddir):
        for fn in files:
            if fn.endswith(".ko"):
                index[fn[:-3].replace("-", "_")] = os.path.join(root, fn)
    builtin = set()
    bpath = os.path.join(moddir, "modules.builtin")
    if os.path.isfile(bpath):
        with open(bpath) as f:
            for line in f:
                builtin.add(os.path.basename(line.strip())[:-3].replace("-", "_"))
    order, state = [], {}

    def visit(name, chain):
        name = name.replace("-", "_")
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            die("module dependency cycle: {}".format(" -> ".join(chain + [name])))
        if name not in index:
            if name in builtin:
                state[name] = "done"
                return
            die(f"module {name} not found under {moddir}")
        state[name] = "visiting"
        info = elf_section(index[name], ".modinfo") or b""
        deps = []
        for item in info.split(b"\0"):
            if item.startswith(b"depends="):
                deps += [d for d in item[8:].decode().split(",") if d]
        for d in deps:
            visit(d, chain + [name])
        state[name] = "done"
        order.append(index[name])

    for n in names:
        visit(n, [])
    for p in order:
        print(p)


# --------------------------------------------------------------------------
# newc cpio writer
# --------------------------------------------------------------------------

class CpioWriter:
    """newc entries into an open file, inode numbers counted from 1."""

    def __init__(self, f, mtime):
        self.f, self.mtime, self.ino = f, mtime, 0

    def entry(self, name, mode, data=b"", rdev=(0, 0), nlink=1):
        self.ino += 1
        nb = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08X}" for v in (
            self.ino, mode, 0, 0, nlink, self.mtime, len(data), 0, 0,
            rdev[0], rdev[1], len(nb), 0))
        self.f.write(hdr.encode() + nb)
        self.f.write(b"\0" * ((4 - (110 + len(nb)) % 4) % 4))
        self.f.write(data)
        self.f.write(b"\0" * ((4 - len(data) % 4) % 4))


def cmd_cpio(rootdir, out):
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))

    names = []
    for root, dirs, files in os.walk(rootdir):
        dirs.sort()
        rel = os.path.relpath(root, rootdir)
        for n in sorted(dirs + files):
            names.append(os.path.normpath(os.path.join(rel, n)))
    names.sort()
    extra = {"dev": (stat.S_IFDIR | 0o755, None),
             "dev/console": (stat.S_IFCHR | 0o600, (5, 1)),
             "dev/null": (stat.S_IFCHR | 0o666, (1, 3))}
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        cpio = CpioWriter(f, mtime)
        for name, (mode, rdev) in extra.items():
            cpio.entry(name, mode, rdev=rdev or (0, 0),
                       nlink=2 if stat.S_ISDIR(mode) else 1)
        for name in names:
            if name in extra:
                continue
            path = os.path.join(rootdir, name)
            st = os.lstat(path)
            perm = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                cpio.entry(name, stat.S_IFLNK | 0o777, os.readlink(path).encode())
            elif stat.S_ISDIR(st.st_mode):
                cpio.entry(name, stat.S_IFDIR | perm, nlink=2)
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as g:
                    cpio.entry(name, stat.S_IFREG | perm, g.read())
            else:
                die(f"cpio: unsupported file type: {path}")
        cpio.entry("TRAILER!!!", 0)
    os.rename(tmp, out)


# --------------------------------------------------------------------------
# build-info.json
# --------------------------------------------------------------------------

def cmd_build_info(out, args):
    """recipe, kernel_release, append and packages are required; every other
    KEY=VAL given must be non-empty too.  KEY:=JSON stores a JSON value."""
    info = {"recipe": None, "kernel_release": None, "append": None, "packages": {}}
    for a in args:
        k, v = a.split("=", 1)
        if k.startswith("PKG:"):
            info["packages"][k[4:]] = v
        elif k == "PKGFILE":
            with open(v, encoding="utf-8") as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 2:
                        info["packages"][parts[0]] = parts[1]
        elif k.endswith(":"):
            info[k[:-1]] = json.loads(v)
        else:
            info[k] = v
    info["packages"] = dict(sorted(info["packages"].items()))
    missing = [k for k, v in info.items() if v in (None, "", {})]
    if missing:
        die("build-info: missing {}".format(", ".join(missing)))
    with open(out, "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")


def main(argv):
    if len(argv) < 2:
        die("usage: see module docstring")
    cmd, args = argv[1], argv[2:]
    if cmd == "apt-sources" and len(args) == 1:
        cmd_apt_sources(args[0])
    elif cmd == "vmlinux" and len(args) == 2:
        cmd_vmlinux(*args)
    elif cmd == "kernel-release" and len(args) == 1:
        cmd_kernel_release(args[0])
    elif cmd == "moddeps" and len(args) >= 2:
        cmd_moddeps(args[0], args[1:])
    elif cmd == "cpio" and len(args) == 2:
        cmd_cpio(*args)
    elif cmd == "build-info" and len(args) >= 1:
        cmd_build_info(args[0], args[1:])
    else:
        die("bad usage: {}".format(" ".join(argv[1:])))


if __name__ == "__main__":
    main(sys.argv)
