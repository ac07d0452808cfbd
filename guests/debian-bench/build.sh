#!/bin/bash
# Build the "debian-bench" guest: a plain debootstrapped Debian 12 (systemd,
# OpenSSH) on an ext4 disk image, booted with the same Debian kernel as the
# tiny guest.  BENCH-ONLY: `make bench` compares its boot-to-SSH time with the
# tiny guest's; no test uses it.  Usage: build.sh OUTDIR   (see README.md)
set -Eeuo pipefail

PROG="guests/debian-bench/build.sh"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TINYHELPER="$HERE/../tiny/tinyhelper.py"
# shellcheck source=guests/tiny/build-lib.sh
source "$HERE/../tiny/build-lib.sh"
LOG=/dev/null
WORK=""

die() {
    trap - ERR
    if [ "$LOG" != /dev/null ] && [ -s "$LOG" ]; then
        tail -n 25 "$LOG" | sed 's/^/  | /' >&2 || true
    fi
    echo "$PROG: error: $*" >&2
    exit 1
}
on_err() { die "command failed at line $1: $2"; }
trap 'on_err "$LINENO" "$BASH_COMMAND"' ERR
unmount_under() {  # a failed debootstrap may leave /proc or /sys mounted in the target
    local m
    [ -n "$1" ] || return 0
    awk -v p="$1/" 'index($2, p) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
}
cleanup() {
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        unmount_under "$WORK"
        rm -rf --one-file-system "$WORK"
    fi
}
trap cleanup EXIT

[ $# -eq 1 ] || die "usage: $0 OUTDIR"
OUT="$1"

# ---------------------------------------------------------------- settings
SUITE=bookworm
# What a plain Debian needs to reach sshd under systemd (minbase has no init).
INCLUDE="systemd-sysv,udev,kmod,dbus,libpam-systemd,openssh-server,iproute2"
# A stock Debian kernel command line (quiet) with the serial console.
APPEND="console=ttyS0 quiet"
# Modules /init loads before switch_root (their dependencies are added).
# crc32c: ext4's metadata_csum and the jbd2 journal checksums need it.
INITRD_MODULES="virtio_pci virtio_blk virtio_net crc32c_generic ext4"
IMAGE_SIZE=1536M
HOST_DEBS="debootstrap e2fsprogs"

CACHE="${TXNSTORM_BUILD_CACHE:-/var/tmp/txnstorm-build-cache}"
PY=python3
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; fi
thelper() { "$PY" "$TINYHELPER" "$@"; }
bhelper() { "$PY" "$HERE/benchhelper.py" "$@"; }

# ---------------------------------------------------------------- checks
[ "$(uname -m)" = x86_64 ] || die "this recipe builds an x86_64 guest on an x86_64 host"
[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot)"
[ -f "$TINYHELPER" ] || die "missing $TINYHELPER (shared with the tiny guest)"
if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT" 2>/dev/null)" ]; then
    die "OUTDIR $OUT exists and is not empty"
fi
# Host packages: installed with apt when missing (idempotent).
missing=()
for p in $HOST_DEBS; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing host packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 "${missing[@]}" \
        || die "apt-get install ${missing[*]} failed"
fi
for tool in apt-get apt-cache dpkg-deb dpkg-query debootstrap chroot mkfs.ext4 ssh-keygen \
            flock truncate "$PY"; do
    command -v "$tool" >/dev/null 2>&1 || die "missing host tool '$tool'"
done

mkdir -p "$CACHE/debian-bench" 2>/dev/null || die "cannot create cache dir $CACHE/debian-bench"
mkdir -p "$OUT" 2>/dev/null || die "cannot create OUTDIR $OUT"
OUT="$(cd "$OUT" && pwd)"
BCACHE="$(cd "$CACHE/debian-bench" && pwd)"

# One build at a time per cache.
exec 9>"$BCACHE/.lock"
flock 9
WORK="$(mktemp -d "$BCACHE/work.XXXXXX")"
LOG="$BCACHE/build.log"   # the last build's log
: >"$LOG"
T0=$(date +%s)
step() { echo "[$(( $(date +%s) - T0 ))s] $*"; echo "=== $*" >>"$LOG"; }

# ---------------------------------------------------------------- private apt
# As guests/tiny: sources derived from this machine's /etc/apt, private lists
# and caches, the machine's apt state untouched.  Used for the kernel and
# busybox-static; debootstrap gets the mirror URI from the same sources.
APTDIR="$BCACHE/apt"
thelper apt-sources "$WORK/sources" >>"$LOG" 2>&1 || die "cannot derive apt sources from /etc/apt"
private_apt "$APTDIR" "$WORK/sources"
MIRROR="$(bhelper mirror "$APTDIR/txnstorm.sources" "$SUITE" 2>>"$LOG")" \
    || die "no apt source in /etc/apt serves $SUITE (log: $LOG)"

DEBS="$BCACHE/debs"
# The same kernel package the tiny guest uses (what linux-image-amd64 depends on).
KPKG="$(apt_cache depends linux-image-amd64 2>>"$LOG" \
    | awk '/^  Depends: linux-image-[0-9]/ {print $2; exit}')"
[ -n "$KPKG" ] || die "cannot resolve linux-image-amd64 to a concrete linux-image package"
KVER="$(candidate "$KPKG")"
BBVER="$(candidate busybox-static)"

# ---------------------------------------------------------------- base rootfs
# debootstrap + the kernel's modules, cached by what goes into it (the mirror
# only through a hash); the per-build parts (keys, config) come after.
BASEKEY="$(printf '%s\n' "v1" "$SUITE" "$INCLUDE" "$MIRROR" "$KPKG=$KVER" | sha256sum | cut -c1-12)"
BASE="$BCACHE/base-$SUITE-$BASEKEY"
if [ ! -f "$BASE/done" ]; then
    rm -rf --one-file-system "$BCACHE"/base-*
    step "debootstrap --variant=minbase $SUITE (+ $INCLUDE)"
    mkdir -p "$BCACHE/debootstrap-debs"
    keyring=()
    if [ -f /usr/share/keyrings/debian-archive-keyring.gpg ]; then
        keyring=(--keyring=/usr/share/keyrings/debian-archive-keyring.gpg)
    fi
    debootstrap --variant=minbase --arch=amd64 --include="$INCLUDE" "${keyring[@]}" \
        --cache-dir="$BCACHE/debootstrap-debs" "$SUITE" "$WORK/base" "$MIRROR" >>"$LOG" 2>&1 \
        || die "debootstrap failed (log: $LOG)"
    unmount_under "$WORK/base"
    step "kernel modules ($KPKG $KVER)"
    mkdir -p "$WORK/kernel"
    krel="$(unpack_kernel "$KPKG" "$KVER" "$WORK/kernel/vmlinux")"
    # merged /usr: /lib is a relative symlink to usr/lib
    mkdir -p "$WORK/base/usr/lib/modules"
    cp -a "$WORK/kpkg/lib/modules/$krel" "$WORK/base/usr/lib/modules/"
    chroot "$WORK/base" depmod -a "$krel" >>"$LOG" 2>&1 || die "depmod in the guest root failed"
    rm -rf "$WORK/kpkg"
    # Nothing is installed at run time: no apt sources, lists or archives.
    rm -f "$WORK/base/etc/apt/sources.list"
    rm -rf "$WORK/base/var/lib/apt/lists"/* "$WORK/base/var/cache/apt"/*.bin
    find "$WORK/base/var/cache/apt/archives" -name '*.deb' -delete
    # The build generates its own host key; sshd serves only that one.
    rm -f "$WORK/base/etc/ssh"/ssh_host_*
    dpkg-query --admindir="$WORK/base/var/lib/dpkg" -W -f '${Package} ${Version}\n' \
        >"$WORK/kernel/packages" 2>>"$LOG"
    echo "$krel" >"$WORK/kernel/release"
    mkdir -p "$BASE.tmp"
    mv "$WORK/base" "$BASE.tmp/root"
    mv "$WORK/kernel"/* "$BASE.tmp/"
    touch "$BASE.tmp/done"
    mv "$BASE.tmp" "$BASE"
fi
KREL="$(cat "$BASE/release")"

step "root filesystem"
ROOT="$WORK/root"
cp -a "$BASE/root" "$ROOT"
rm -f "$ROOT/var/log/bootstrap.log"   # debootstrap's log names the build host's mirror

# ---------------------------------------------------------------- keys
step "keys"
ssh-keygen -q -t ed25519 -N '' -C "root@txnstorm-debian" -f "$ROOT/etc/ssh/ssh_host_ed25519_key" >>"$LOG" 2>&1 \
    || die "ssh-keygen failed (host key)"
awk '{print $1, $2; exit}' "$ROOT/etc/ssh/ssh_host_ed25519_key.pub" >"$OUT/host_key.pub"
grep -q '^ssh-ed25519 AAAA' "$OUT/host_key.pub" || die "cannot read the guest host public key"
ssh-keygen -q -t ed25519 -N '' -C "txnstorm-debian-bench" -f "$OUT/id_ed25519" >>"$LOG" 2>&1 \
    || die "ssh-keygen failed (client key)"
install -d -m 0700 "$ROOT/root/.ssh"
install -m 0600 "$OUT/id_ed25519.pub" "$ROOT/root/.ssh/authorized_keys"

# ---------------------------------------------------------------- config
step "configuration"
mkdir -p "$ROOT/etc/ssh/sshd_config.d"
cat >"$ROOT/etc/ssh/sshd_config.d/txnstorm.conf" <<'EOF'
# txnstorm debian-bench: root logs in with the build's key only
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
HostKey /etc/ssh/ssh_host_ed25519_key
UseDNS no
EOF
mkdir -p "$ROOT/etc/systemd/network"
cat >"$ROOT/etc/systemd/network/10-virtio.network" <<'EOF'
# QEMU user-mode networking (slirp) defaults
[Match]
Driver=virtio_net

[Network]
Address=10.0.2.15/24
Gateway=10.0.2.2
DNS=10.0.2.3
LinkLocalAddressing=no
IPv6AcceptRA=no
EOF
cat >"$ROOT/usr/local/sbin/txnstorm-ready" <<'EOF'
#!/bin/sh
# Tell the host (serial console) that sshd listens and the network is up.
i=0
while ! ip -4 -o addr show | grep -q ' 10\.0\.2\.15/'; do
    i=$((i + 1))
    [ $i -le 600 ] || { echo "txnstorm-guest: FAILED: no 10.0.2.15 after 60 s" >/dev/console; exit 1; }
    sleep 0.1
done
echo "txnstorm-guest: ready" >/dev/console
EOF
chmod 0755 "$ROOT/usr/local/sbin/txnstorm-ready"
cat >"$ROOT/etc/systemd/system/txnstorm-ready.service" <<'EOF'
[Unit]
Description=Report sshd readiness on the console (txnstorm bench)
After=ssh.service systemd-networkd.service
Wants=ssh.service systemd-networkd.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/txnstorm-ready

[Install]
WantedBy=multi-user.target
EOF
chroot "$ROOT" systemctl enable systemd-networkd.service ssh.service txnstorm-ready.service >>"$LOG" 2>&1 \
    || die "systemctl enable in the guest root failed (log: $LOG)"
printf 'txnstorm-debian\n' >"$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n10.0.2.15\ttxnstorm-debian\n' >"$ROOT/etc/hosts"
printf 'nameserver 10.0.2.3\n' >"$ROOT/etc/resolv.conf"
printf '# / is mounted read-write by the initramfs (virtio disk with serial "root")\n' >"$ROOT/etc/fstab"
cat >"$ROOT/etc/txnstorm-guest" <<EOF
recipe=debian-bench
kernel_release=$KREL
EOF

# ---------------------------------------------------------------- initramfs
step "initramfs"
IRD="$WORK/initramfs"
mkdir -p "$IRD"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,newroot,"lib/modules/$KREL"}
install_busybox "$IRD" "$BBVER" bin/sh sbin/insmod bin/mount bin/umount sbin/switch_root bin/usleep
# shellcheck disable=SC2086
copy_modules "$ROOT/usr/lib/modules/$KREL" "$IRD/lib/modules/$KREL" $INITRD_MODULES
install -m 0755 "$HERE/init" "$IRD/init"
thelper cpio "$IRD" "$OUT/initramfs.cpio" >>"$LOG" 2>&1 || die "cannot write the initramfs (log: $LOG)"
cp "$BASE/vmlinux" "$OUT/vmlinux"

# ---------------------------------------------------------------- disk image
step "root.img (ext4, $IMAGE_SIZE sparse, mkfs.ext4 -d)"
truncate -s "$IMAGE_SIZE" "$WORK/root.img"
mkfs.ext4 -q -F -L txnstorm-root -d "$ROOT" "$WORK/root.img" >>"$LOG" 2>&1 \
    || die "mkfs.ext4 -d failed (log: $LOG)"
mv "$WORK/root.img" "$OUT/root.img"

# ---------------------------------------------------------------- build-info
thelper build-info "$OUT/build-info.json" recipe=debian-bench "kernel_release=$KREL" bench_only:=true \
    "append=$APPEND" "PKG:$KPKG=$KVER" "PKG:busybox-static=$BBVER" "PKGFILE=$BASE/packages" \
    >>"$LOG" 2>&1 || die "cannot write build-info.json (log: $LOG)"

step "done: $OUT (root.img $(du -h "$OUT/root.img" | cut -f1) used of $IMAGE_SIZE, initramfs.cpio $(du -h "$OUT/initramfs.cpio" | cut -f1))"
