#!/bin/bash
# Build the "tiny" txnstorm guest from Debian packages: Debian's kernel as an
# ELF vmlinux (PVH boot), busybox init, static dropbear and static fio built
# from Debian source packages.  Usage: build.sh OUTDIR   (see README.md)
set -Eeuo pipefail

PROG="guests/tiny/build.sh"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=guests/tiny/build-lib.sh
source "$HERE/build-lib.sh"
LOG=/dev/null
WORK=""
DIED=""

die() {
    trap - ERR
    # A die() inside $(...) has already reported; the parent then just exits.
    if [ -z "$DIED" ] || [ ! -e "$DIED" ]; then
        if [ "$LOG" != /dev/null ] && [ -s "$LOG" ]; then
            tail -n 25 "$LOG" | sed 's/^/  | /' >&2 || true
        fi
        echo "$PROG: error: $*" >&2
        if [ -n "$DIED" ]; then : >"$DIED" 2>/dev/null || true; fi
    fi
    exit 1
}
on_err() { die "command failed at line $1: $2"; }
trap 'on_err "$LINENO" "$BASH_COMMAND"' ERR
cleanup() { if [ -n "$WORK" ] && [ -d "$WORK" ]; then rm -rf "$WORK"; fi; }
trap cleanup EXIT

[ $# -eq 1 ] || die "usage: $0 OUTDIR"
OUT="$1"

# ---------------------------------------------------------------- settings
# Kernel command line.  console=ttyS0 is required; the rest makes TCG boots
# faster or the guest leaner (see README.md); none is needed to boot.
APPEND="console=ttyS0 quiet cryptomgr.notests pci=noacpi no_timer_check tsc=reliable"
APPEND+=" mitigations=off rodata=off init_on_alloc=0 randomize_kstack_offset=off"
APPEND+=" lsm=capability ipv6.disable=1"
APPEND+=" initcall_blacklist=crypto_kdf108_init,init_kprobe_trace,init_encrypted"
# Kernel modules for the guest (their dependencies are added automatically).
MODULES="virtio_pci virtio_blk virtio_net virtio_scsi sd_mod"
# Host -dev packages whose static libraries are linked into the guest binaries.
HOST_STATIC_DEBS="libc6-dev libaio-dev zlib1g-dev"
FIO_CONFIGURE="--build-static --disable-native --disable-numa --disable-rdma
  --disable-rados --disable-rbd --disable-http --disable-gfapi --disable-libnfs
  --disable-pmem --disable-xnvme --disable-libzbc --disable-tcmalloc
  --disable-dfs --disable-lex"
DROPBEAR_CONFIGURE="--enable-static --enable-bundled-libtom --disable-zlib
  --disable-pam --disable-lastlog --disable-utmp --disable-utmpx --disable-wtmp
  --disable-wtmpx --disable-pututline --disable-pututxline"
DROPBEAR_PATCHES="$HERE/patches/dropbear-session-close-race.patch"

CACHE="${TXNSTORM_BUILD_CACHE:-/var/tmp/txnstorm-build-cache}"
PY=python3
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; fi
helper() { "$PY" "$HERE/tinyhelper.py" "$@"; }

# ---------------------------------------------------------------- checks
[ "$(uname -m)" = x86_64 ] || die "this recipe builds an x86_64 guest on an x86_64 host"
for tool in apt-get apt-cache dpkg-deb dpkg-query dpkg-source gcc make patch readelf \
            strip ssh-keygen flock sha256sum xz "$PY"; do
    command -v "$tool" >/dev/null 2>&1 \
        || die "missing host tool '$tool' (apt-get install \$(cat guests/tiny/host-packages.txt))"
done
for f in libaio.a libz.a libc.a; do
    [ -f "/usr/lib/x86_64-linux-gnu/$f" ] \
        || die "missing /usr/lib/x86_64-linux-gnu/$f (apt-get install \$(cat guests/tiny/host-packages.txt))"
done
if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT" 2>/dev/null)" ]; then
    die "OUTDIR $OUT exists and is not empty"
fi
mkdir -p "$CACHE" 2>/dev/null || die "cannot create cache dir $CACHE"
mkdir -p "$OUT" 2>/dev/null || die "cannot create OUTDIR $OUT"
OUT="$(cd "$OUT" && pwd)"
CACHE="$(cd "$CACHE" && pwd)"

# One build at a time per cache (apt lists, debs and builds are shared).
exec 9>"$CACHE/.lock"
flock 9
WORK="$(mktemp -d "$CACHE/work.XXXXXX")"
LOG="$CACHE/build.log"   # the last build's log; kept (the lock serialises builds)
DIED="$WORK/died"
: >"$LOG"
T0=$(date +%s)
step() { echo "[$(( $(date +%s) - T0 ))s] $*"; echo "=== $*" >>"$LOG"; }
recipe_hash() { sha256sum | cut -c1-12; }   # stdin -> short hash (cache keys)

# ---------------------------------------------------------------- private apt
# Our own sources (deb + deb-src, derived from this machine's /etc/apt),
# lists, caches and an empty dpkg status: the machine's apt state is untouched.
APTDIR="$CACHE/apt"
helper apt-sources "$WORK/sources" >>"$LOG" 2>&1 || die "cannot derive apt sources from /etc/apt"
private_apt "$APTDIR" "$WORK/sources"

srcversion() {  # source package -> newest version
    local v
    v="$(apt_cache showsrc "$1" 2>>"$LOG" | awk '/^Version:/ {print $2}' | sort -V | tail -n 1)"
    [ -n "$v" ] || die "no source package '$1' in the apt sources"
    echo "$v"
}
DEBS="$CACHE/debs"
fetch_src() {  # source package version -> unpacked source tree (in $WORK)
    local pkg="$1" ver="$2" d="$WORK/src-$1" tree
    rm -rf "$d"
    mkdir -p "$d"
    (cd "$d" && apt_get source "$pkg=$ver") >>"$LOG" 2>&1 \
        || die "apt-get source $pkg=$ver failed (log: $LOG)"
    tree="$(find "$d" -mindepth 1 -maxdepth 1 -type d -name "$pkg-*" | head -n 1)"
    [ -n "$tree" ] || die "no source tree after apt-get source $pkg"
    echo "$tree"
}

declare -A PKGS=()   # Debian package -> version, for build-info.json
for p in $HOST_STATIC_DEBS; do
    PKGS[$p]="$(dpkg-query -W -f '${Version}' "$p" 2>/dev/null)" \
        || die "host package $p is not installed (see guests/tiny/host-packages.txt)"
done
HOSTKEY="$(for p in $HOST_STATIC_DEBS gcc; do dpkg-query -W -f '${Package}=${Version} ' "$p" 2>/dev/null || true; done)"

# ---------------------------------------------------------------- kernel
step "kernel"
KPKG="$(apt_cache depends linux-image-amd64 2>>"$LOG" \
    | awk '/^  Depends: linux-image-[0-9]/ {print $2; exit}')"
[ -n "$KPKG" ] || die "cannot resolve linux-image-amd64 to a concrete linux-image package"
KVER="$(candidate "$KPKG")"
PKGS[$KPKG]="$KVER"
KCACHE="$CACHE/kernel/$KPKG-$KVER-$( { echo "$MODULES"; cat "$HERE/tinyhelper.py" "$HERE/build-lib.sh"; } | recipe_hash)"
if [ ! -f "$KCACHE/done" ]; then
    rm -rf "$CACHE/kernel"
    mkdir -p "$KCACHE.tmp/modules"
    krel="$(unpack_kernel "$KPKG" "$KVER" "$KCACHE.tmp/vmlinux")"
    grep -q '^CONFIG_PVH=y' "$WORK/kpkg/boot/config-$krel" || die "kernel $krel lacks CONFIG_PVH"
    echo "$krel" >"$KCACHE.tmp/release"
    # shellcheck disable=SC2086
    copy_modules "$WORK/kpkg/lib/modules/$krel" "$KCACHE.tmp/modules" $MODULES
    touch "$KCACHE.tmp/done"
    rm -rf "$WORK/kpkg" "${DEBS:?}/$KPKG"   # keep only what the guest needs
    mv "$KCACHE.tmp" "$KCACHE"
fi
KREL="$(cat "$KCACHE/release")"

# ---------------------------------------------------------------- busybox
step "busybox"
ROOT="$WORK/root"
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,etc/dropbear,root/.ssh,proc,sys,dev,tmp,run,var/log,mnt}
ln -s ../run "$ROOT/var/run"
chmod 0700 "$ROOT/root" "$ROOT/root/.ssh"
chmod 1777 "$ROOT/tmp"
BBVER="$(candidate busybox-static)"
PKGS[busybox-static]="$BBVER"
install_busybox "$ROOT" "$BBVER" bin/sh sbin/insmod sbin/ip bin/mount sbin/init bin/usleep

# ---------------------------------------------------------------- builds
# build_src NAME VERSION CONFIGURE_ARGS MAKE_TARGETS BINARIES [PATCHES...]:
# static binaries from a Debian source package, cached by recipe hash.
build_src() {
    local pkg="$1" ver="$2" conf="$3" targets="$4" bins="$5" key dir tree b p
    shift 5
    key="$( { echo "$conf|$targets|$HOSTKEY"; cat "$@" /dev/null; \
              if [ "$pkg" = dropbear ]; then dropbear_localoptions; fi; } | recipe_hash)"
    dir="$CACHE/build/$pkg-$ver-$key"
    if [ ! -f "$dir/done" ]; then
        rm -rf "$CACHE/build/$pkg"-*
        tree="$(fetch_src "$pkg" "$ver")"
        for p in "$@"; do
            patch -d "$tree" -p1 -N <"$p" >>"$LOG" 2>&1 || die "patch $(basename "$p") does not apply to $pkg $ver"
        done
        if [ "$pkg" = dropbear ]; then dropbear_localoptions >"$tree/localoptions.h"; fi
        # shellcheck disable=SC2086
        (cd "$tree" && ./configure $conf) >>"$LOG" 2>&1 || die "$pkg ./configure failed (log: $LOG)"
        # shellcheck disable=SC2086
        make -C "$tree" -j"$(nproc)" $targets >>"$LOG" 2>&1 || die "$pkg build failed (log: $LOG)"
        mkdir -p "$dir.tmp"
        for b in $bins; do
            strip "$tree/$b"
            if readelf -lW "$tree/$b" | grep -q 'Requesting program interpreter'; then
                die "$pkg: $b is not statically linked"
            fi
            install -m 0755 "$tree/$b" "$dir.tmp/$b"
        done
        touch "$dir.tmp/done"
        rm -rf "$tree"
        mv "$dir.tmp" "$dir"
    fi
    echo "$dir"
}
dropbear_localoptions() {
    cat <<'EOF'
/* txnstorm tiny guest: root logs in by public key only */
#define DROPBEAR_SVR_PASSWORD_AUTH 0
#define DROPBEAR_SVR_PAM_AUTH 0
#define DROPBEAR_X11FWD 0
#define DROPBEAR_SVR_AGENTFWD 0
#define DROPBEAR_CLI_AGENTFWD 0
#define DROPBEAR_DSS 0
#define DO_MOTD 0
/* every host connection arrives from QEMU's user-mode net as 10.0.2.2 */
#define MAX_UNAUTH_PER_IP 30
#define DEFAULT_ROOT_PATH "/usr/sbin:/usr/bin:/sbin:/bin"
EOF
}

step "dropbear (static, Debian source + patches/)"
DBVER="$(srcversion dropbear)"
PKGS[src:dropbear]="$DBVER"
# shellcheck disable=SC2086
DBDIR="$(build_src dropbear "$DBVER" "$DROPBEAR_CONFIGURE" "dropbear dropbearkey" \
    "dropbear dropbearkey" $DROPBEAR_PATCHES)"
install -m 0755 "$DBDIR/dropbear" "$ROOT/usr/sbin/dropbear"

step "fio (static, Debian source)"
FIOVER="$(srcversion fio)"
PKGS[src:fio]="$FIOVER"
FIODIR="$(build_src fio "$FIOVER" "$FIO_CONFIGURE" "fio" "fio")"
install -m 0755 "$FIODIR/fio" "$ROOT/usr/bin/fio"
FIOVERSION="$("$ROOT/usr/bin/fio" --version 2>>"$LOG")" || die "the static fio does not run"
case "$FIOVERSION" in fio-*) ;; *) die "unexpected fio --version output '$FIOVERSION'";; esac
"$ROOT/usr/bin/fio" --enghelp 2>>"$LOG" | grep -qw libaio || die "fio was built without libaio"
"$ROOT/usr/bin/fio" --enghelp 2>>"$LOG" | grep -qw io_uring || die "fio was built without io_uring"

# Every guests/tiny/src/*.c becomes a static /usr/bin/<name> in the guest.
shopt -s nullglob
csrc=("$HERE"/src/*.c)
shopt -u nullglob
if [ ${#csrc[@]} -gt 0 ]; then
    step "static C helpers (${#csrc[@]})"
    for c in "${csrc[@]}"; do
        name="$(basename "$c" .c)"
        gcc -static -O2 -Wall -o "$ROOT/usr/bin/$name" "$c" >>"$LOG" 2>&1 \
            || die "cannot compile $c (log: $LOG)"
        strip "$ROOT/usr/bin/$name"
    done
fi

# ---------------------------------------------------------------- keys
step "keys"
"$DBDIR/dropbearkey" -t ed25519 -f "$ROOT/etc/dropbear/dropbear_ed25519_host_key" >>"$LOG" 2>&1 \
    || die "dropbearkey failed to generate the host key"
chmod 0600 "$ROOT/etc/dropbear/dropbear_ed25519_host_key"
"$DBDIR/dropbearkey" -y -f "$ROOT/etc/dropbear/dropbear_ed25519_host_key" 2>>"$LOG" \
    | awk '$1 == "ssh-ed25519" {print $1, $2; exit}' >"$OUT/host_key.pub"
grep -q '^ssh-ed25519 AAAA' "$OUT/host_key.pub" || die "cannot read the guest host public key"
ssh-keygen -q -t ed25519 -N '' -C "txnstorm-tiny" -f "$OUT/id_ed25519" >>"$LOG" 2>&1 \
    || die "ssh-keygen failed"
install -m 0600 "$OUT/id_ed25519.pub" "$ROOT/root/.ssh/authorized_keys"

# ---------------------------------------------------------------- initramfs
step "initramfs"
mkdir -p "$ROOT/lib/modules/$KREL"
cp "$KCACHE"/modules/*.ko "$KCACHE/modules/load-order" "$ROOT/lib/modules/$KREL/"
install -m 0755 "$HERE/init" "$ROOT/init"
cat >"$ROOT/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$ROOT/etc/group" <<'EOF'
root:x:0:
tty:x:5:
nogroup:x:65534:
EOF
printf 'root:*:1:0:99999:7:::\n' >"$ROOT/etc/shadow"
chmod 0600 "$ROOT/etc/shadow"
printf '/bin/sh\n' >"$ROOT/etc/shells"
printf '127.0.0.1\tlocalhost\n10.0.2.15\ttxnstorm\n' >"$ROOT/etc/hosts"
printf 'nameserver 10.0.2.3\n' >"$ROOT/etc/resolv.conf"
printf 'txnstorm\n' >"$ROOT/etc/hostname"
cat >"$ROOT/etc/inittab" <<'EOF'
# /init has set the system up already; busybox init reaps orphans, offers a
# root shell on the serial console and handles poweroff/reboot.
ttyS0::respawn:-/bin/sh
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/sync
EOF
cat >"$ROOT/etc/profile" <<'EOF'
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
EOF
cat >"$ROOT/etc/txnstorm-guest" <<EOF
recipe=tiny
kernel_release=$KREL
fio_version=$FIOVERSION
EOF
helper cpio "$ROOT" "$OUT/initramfs.cpio" >>"$LOG" 2>&1 || die "cannot write the initramfs (log: $LOG)"
cp "$KCACHE/vmlinux" "$OUT/vmlinux"

# ---------------------------------------------------------------- build-info
pkgargs=()
for p in "${!PKGS[@]}"; do pkgargs+=("PKG:$p=${PKGS[$p]}"); done
helper build-info "$OUT/build-info.json" recipe=tiny "kernel_release=$KREL" \
    "append=$APPEND" "fio_version=$FIOVERSION" "${pkgargs[@]}" >>"$LOG" 2>&1 \
    || die "cannot write build-info.json (log: $LOG)"

step "done: $OUT (vmlinux $(du -h "$OUT/vmlinux" | cut -f1), initramfs.cpio $(du -h "$OUT/initramfs.cpio" | cut -f1))"
