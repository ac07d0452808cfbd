# shellcheck shell=bash
# Sourced by guests/*/build.sh: Debian packages through apt with our own
# sources, lists, caches and an empty dpkg status (the machine's apt state is
# untouched), and busybox-static installed from them.
#   private_apt APTDIR SOURCES   sets up APT_OPTS and refreshes the lists when
#                                SOURCES changed or they are over 12 h old
#   apt_get ARGS / apt_cache ARGS  apt-get / apt-cache on that state
#   candidate PKG                  the version apt would install
#   fetch_deb PKG VER              path of the .deb, cached under $DEBS
#   unpack_kernel PKG VER VMLINUX  the kernel package unpacked in $WORK/kpkg, its
#                                  ELF vmlinux written to VMLINUX; prints the release
#   copy_modules MODDIR DEST MODULE...  the modules and their dependencies into
#                                  DEST, DEST/load-order says in which order
#   install_busybox DEST VER APPLET...  busybox-static VER as DEST/bin/busybox,
#                                  every applet linked; dies if a named one is missing
# Needs the caller's die, step, LOG, DEBS, WORK and PY.

BUILD_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

private_apt() {
    local aptdir="$1" sources="$2"
    mkdir -p "$aptdir/lists/partial" "$aptdir/cache/archives/partial"
    APT_OPTS=(
        -o "Dir::Etc::SourceList=$aptdir/txnstorm.sources"
        -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$aptdir/lists"
        -o "Dir::Cache=$aptdir/cache"
        -o Dir::Cache::pkgcache=pkgcache.bin
        -o Dir::Cache::srcpkgcache=srcpkgcache.bin
        -o Dir::State::status=/dev/null
        -o Dir::Etc::Preferences=/dev/null
        -o Dir::Etc::PreferencesParts=/dev/null
        -o APT::Sandbox::User=root
    )
    if ! cmp -s "$sources" "$aptdir/txnstorm.sources" || [ ! -f "$aptdir/stamp" ] \
       || [ -z "$(find "$aptdir/stamp" -mmin -720 2>/dev/null)" ]; then
        step "apt-get update (private lists in $aptdir)"
        cp "$sources" "$aptdir/txnstorm.sources"
        rm -f "$aptdir/stamp"
        apt_get update >>"$LOG" 2>&1 || die "private apt-get update failed (log: $LOG)"
        touch "$aptdir/stamp"
    fi
}
apt_get() { apt-get -q "${APT_OPTS[@]}" "$@"; }
apt_cache() { apt-cache "${APT_OPTS[@]}" "$@"; }
candidate() {  # binary package -> candidate version
    local v
    v="$(apt_cache policy "$1" 2>>"$LOG" | awk '/^  Candidate:/ {print $2}')"
    if [ -z "$v" ] || [ "$v" = "(none)" ]; then
        die "no candidate version for Debian package '$1'"
    fi
    echo "$v"
}
fetch_deb() {  # binary package version -> path of the cached .deb
    local pkg="$1" ver="$2" dir="$DEBS/$1/$2"
    if ! ls "$dir"/*.deb >/dev/null 2>&1; then
        rm -rf "${DEBS:?}/$pkg"
        mkdir -p "$dir.tmp"
        (cd "$dir.tmp" && apt_get download "$pkg=$ver") >>"$LOG" 2>&1 \
            || die "apt-get download $pkg=$ver failed (log: $LOG)"
        mv "$dir.tmp" "$dir"
    fi
    ls "$dir"/*.deb | head -n 1
}
install_busybox() {
    local dest="$1" ver="$2" app
    shift 2
    mkdir -p "$WORK/busybox"
    dpkg-deb -x "$(fetch_deb busybox-static "$ver")" "$WORK/busybox" >>"$LOG" 2>&1 \
        || die "dpkg-deb -x busybox-static failed"
    install -m 0755 "$WORK/busybox/bin/busybox" "$dest/bin/busybox"
    "$dest/bin/busybox" --list-full >"$WORK/applets" 2>>"$LOG" || die "cannot list busybox applets"
    while read -r app; do
        if [ -e "$dest/$app" ] || [ -L "$dest/$app" ]; then continue; fi
        mkdir -p "$dest/$(dirname "$app")"
        ln -s /bin/busybox "$dest/$app"
    done <"$WORK/applets"
    for app in "$@"; do
        [ -L "$dest/$app" ] || die "busybox-static lacks the $(basename "$app") applet"
    done
}
unpack_kernel() {
    local vmlinuz krel
    mkdir -p "$WORK/kpkg"
    dpkg-deb -x "$(fetch_deb "$1" "$2")" "$WORK/kpkg" >>"$LOG" 2>&1 || die "dpkg-deb -x $1 $2 failed"
    vmlinuz="$(find "$WORK/kpkg/boot" -name 'vmlinuz-*' | head -n 1)"
    krel="${vmlinuz##*/vmlinuz-}"
    "$PY" "$BUILD_LIB_DIR/tinyhelper.py" vmlinux "$vmlinuz" "$3" >>"$LOG" 2>&1 \
        || die "cannot extract vmlinux from $vmlinuz (log: $LOG)"
    [ "$("$PY" "$BUILD_LIB_DIR/tinyhelper.py" kernel-release "$3")" = "$krel" ] \
        || die "vmlinux banner does not match kernel release $krel"
    echo "$krel"
}
copy_modules() {
    local moddir="$1" dest="$2" ko
    shift 2
    "$PY" "$BUILD_LIB_DIR/tinyhelper.py" moddeps "$moddir" "$@" >"$WORK/modlist" 2>>"$LOG" \
        || die "cannot resolve kernel module dependencies (log: $LOG)"
    while read -r ko; do
        cp "$ko" "$dest/"
        basename "$ko" .ko >>"$dest/load-order"
    done <"$WORK/modlist"
}
