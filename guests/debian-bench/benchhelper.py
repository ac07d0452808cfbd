#!/usr/bin/env python3
"""Build-time helper for guests/debian-bench/build.sh (Python stdlib only).

The rest (apt sources from /etc/apt, vmlinux, module order, cpio, build-info) is
guests/tiny/tinyhelper.py, shared with the tiny guest.

Subcommands:
  mirror SOURCES SUITE        print the URI of the deb822 stanza in SOURCES
                              (tinyhelper apt-sources output) serving SUITE
"""

import sys


def die(msg):
    sys.stderr.write(f"benchhelper: {msg}\n")
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
    die(f"no apt source serves suite {suite!r} (component main) in {sources}")


def main(argv):
    if len(argv) < 2:
        die("usage: see module docstring")
    cmd, args = argv[1], argv[2:]
    if cmd == "mirror" and len(args) == 2:
        cmd_mirror(*args)
    else:
        die("bad usage: {}".format(" ".join(argv[1:])))


if __name__ == "__main__":
    main(sys.argv)
