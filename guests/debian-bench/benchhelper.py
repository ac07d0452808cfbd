#!/usr/bin/env python3
"""Build-time helper for guests/debian-bench/build.sh (Python stdlib only).

The rest (apt sources from /etc/apt, vmlinux, module order, cpio) is
guests/tiny/tinyhelper.py, shared with the tiny guest.

Subcommands:
  mirror SOURCES SUITE        print the URI of the deb822 stanza in SOURCES
                              (tinyhelper apt-sources output) serving SUITE
  build-info OUT KEY=VAL...   write build-info.json: PKG:name=ver entries become
                              "packages", PKGFILE=path adds "name version" lines,
                              and "bench_only" is always true
"""

import json
import sys


def die(msg):
    sys.stderr.write("benchhelper: %s\n" % msg)
    sys.exit(1)


def stanzas(text):
    out, cur = [], {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if cur:
                out.append(cur)
            cur = {}
        elif line[0] in " \t":
            continue  # continuation lines (Signed-By blocks): not needed here
        elif ":" in line:
            k, v = line.split(":", 1)
            cur[k.strip().lower()] = v.strip()
    if cur:
        out.append(cur)
    return out


def cmd_mirror(sources, suite):
    with open(sources, encoding="utf-8") as f:
        text = f.read()
    for st in stanzas(text):
        if suite in st.get("suites", "").split() and "main" in st.get("components", "main").split():
            uris = st.get("uris", "").split()
            if uris:
                print(uris[0])
                return
    die("no apt source serves suite %r (component main) in %s" % (suite, sources))


def cmd_build_info(out, args):
    info = {"recipe": None, "kernel_release": None, "append": None, "packages": {}, "bench_only": True}
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
        else:
            info[k] = v
    info["packages"] = dict(sorted(info["packages"].items()))
    missing = [k for k, v in info.items() if v in (None, "", {})]
    if missing:
        die("build-info: missing %s" % ", ".join(missing))
    with open(out, "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")


def main(argv):
    if len(argv) < 2:
        die("usage: see module docstring")
    cmd, args = argv[1], argv[2:]
    if cmd == "mirror" and len(args) == 2:
        cmd_mirror(*args)
    elif cmd == "build-info" and len(args) >= 1:
        cmd_build_info(args[0], args[1:])
    else:
        die("bad usage: %s" % " ".join(argv[1:]))


if __name__ == "__main__":
    main(sys.argv)
