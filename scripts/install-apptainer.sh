#!/bin/bash
# Install Apptainer on Debian 12 (bookworm, amd64), as root, from the Debian mirror alone
# (scripts/apptainer-up.sh calls it on a fresh machine; real clusters have Apptainer already).
#
# Bookworm has no apptainer package, and sid's needs glibc >= 2.38 where bookworm has 2.36.
# So this script turns sid's package into one that runs on bookworm: it downloads sid's
# apptainer, libc6, libseccomp2 and libsqlite3-0 with an apt state of its own (the system's
# sources stay as they are), puts sid's libraries in /opt/apptainer-sid/lib, and points the
# two binaries (apptainer, starter) at them with patchelf. offsetpreload.so runs inside the
# host's squashfuse and fuse2fs, so it keeps the host's glibc: scripts/rebind_c23.py drops
# its one need for 2.38. The result, apptainer_<version>+sidglibc1_amd64.deb, is installed
# as a normal package (`dpkg -r apptainer` removes it) and kept in the cache folder, so a
# second install downloads nothing from sid. Then root gets what it needs on a machine
# without systemd and without the full capability set (containers, CI), and a tiny image
# proves that `apptainer exec` works.
#
#   install-apptainer.sh CACHE     the folder that keeps the .deb (one found there is used)
#   OPTBENCH_APPTAINER_VERSION     sid's version to fetch, e.g. 1.4.5-2 (default: sid's current one)
#   DEBIAN_MIRROR                  default http://deb.debian.org/debian
set -euo pipefail
CACHE=${1:?usage: install-apptainer.sh CACHE_FOLDER}
PIN=${OPTBENCH_APPTAINER_VERSION:-}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PRIVATE=/opt/apptainer-sid/lib
LIBEXEC=usr/lib/x86_64-linux-gnu/apptainer
# From bookworm: apptainer's dependencies and recommendations, debootstrap (the images'
# bootstrap), capsh, and the tools that repack the .deb.
DEPS=(ca-certificates containernetworking-plugins squashfs-tools uidmap libseccomp2 libsqlite3-0
      e2fsprogs fuse2fs squashfuse fuse-overlayfs debootstrap libcap2-bin patchelf python3-minimal)
export DEBIAN_FRONTEND=noninteractive
here=$(cd "$(dirname "$0")" && pwd)
say() { echo "[install-apptainer] $*"; }

[ "$(id -u)" = 0 ] || { echo "install-apptainer: run as root." >&2; exit 2; }
[ "$(dpkg --print-architecture)" = amd64 ] || { echo "install-apptainer: amd64 only." >&2; exit 2; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$CACHE"

missing=()
for p in "${DEPS[@]}"; do
    dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing from bookworm: ${missing[*]}"
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

shopt -s nullglob
cached=("$CACHE"/apptainer_${PIN:-*}+sidglibc1_amd64.deb)
if [ ${#cached[@]} -gt 0 ]; then
    deb=${cached[-1]}
    say "using the cached $deb"
else
    say "downloading from sid: apptainer${PIN:+ $PIN}, libc6, libseccomp2, libsqlite3-0"
    cd "$scratch"
    mkdir -p lists/partial cache/archives/partial debs root
    echo "deb $MIRROR sid main" > sid.list
    sid=(-q -o Dir::Etc::SourceList="$scratch/sid.list" -o Dir::Etc::SourceParts=/dev/null
         -o Dir::State::Lists="$scratch/lists" -o Dir::Cache="$scratch/cache"
         -o Dir::State::status=/dev/null -o APT::Sandbox::User=root)
    apt-get "${sid[@]}" update
    (cd debs && apt-get "${sid[@]}" download "apptainer${PIN:+=$PIN}" libc6 libseccomp2 libsqlite3-0)

    say "repacking apptainer for bookworm"
    dpkg-deb -R debs/apptainer_*.deb root
    mkdir -p "root$PRIVATE"
    for p in libc6 libseccomp2 libsqlite3-0; do
        dpkg-deb -x debs/"$p"_*.deb "$p"
        cp -a "$p"/usr/lib/x86_64-linux-gnu/*.so* "root$PRIVATE/"
        install -D -m 644 "$p/usr/share/doc/$p/copyright" "root/opt/apptainer-sid/share/doc/$p/copyright"
    done
    for binary in usr/bin/apptainer "$LIBEXEC/bin/starter"; do
        # DT_RPATH, not DT_RUNPATH: it also applies to the libraries' own dependencies (libc.so.6).
        patchelf --set-interpreter "$PRIVATE/ld-linux-x86-64.so.2" --force-rpath --set-rpath "$PRIVATE" "root/$binary"
    done
    python3 "$here/rebind_c23.py" "root/$LIBEXEC/lib/offsetpreload.so"
    version=$(dpkg-deb -f debs/apptainer_*.deb Version)+sidglibc1
    sed -i -e "s/^Version: .*/Version: $version/" -e 's/libc6 (>= 2\.38)/libc6/' \
           -e '/^Built-Using:/d' -e '/^Static-Built-Using:/d' -e '/^Recommends:/d' \
           -e '/^Depends:/a Recommends: e2fsprogs, fuse2fs, squashfuse, fuse-overlayfs' \
           -e "s/^Installed-Size: .*/Installed-Size: $(du -sk --exclude=DEBIAN root | cut -f1)/" \
           root/DEBIAN/control
    (cd root && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | LC_ALL=C sort | xargs -d '\n' md5sum) \
        > root/DEBIAN/md5sums
    deb=$CACHE/apptainer_${version}_amd64.deb
    dpkg-deb --root-owner-group -b root "$deb.partial"
    mv "$deb.partial" "$deb"
    say "kept $deb"
fi
dpkg -i --force-confold "$deb"

conf=/etc/apptainer/apptainer.conf
# Without systemd as PID 1, cgroups go through cgroupfs (else --memory, --cpus and instance stats fail).
[ "$(cat /proc/1/comm)" = systemd ] || sed -i 's/^systemd cgroups = yes/systemd cgroups = no/' "$conf"
# Root without the full capability set (this machine kind lacks CAP_SYS_RESOURCE) fails every exec
# under "root default capabilities = full": give root the capabilities it has instead (each one
# added prints two warnings about privilege escalation: root has these capabilities anyway).
bounding=$(awk '/^CapBnd/ {print $2}' /proc/self/status)
if [ "$bounding" != "$(printf '%016x' $(( (1 << ($(cat /proc/sys/kernel/cap_last_cap) + 1)) - 1 )))" ]; then
    say "root lacks some capabilities: root default capabilities = file"
    sed -i 's/^root default capabilities = full/root default capabilities = file/' "$conf"
    apptainer capability add --user root "$(capsh --decode="$bounding" | cut -d= -f2)" 2>/dev/null
fi
# Subordinate ids, so that root can build with --fakeroot (which such machines need).
grep -qE '^(root|0):' /etc/subuid 2>/dev/null || apptainer config fakeroot --add root
# Users mount images through FUSE; udev would make /dev/fuse 0666 on a usual system.
[ ! -c /dev/fuse ] || chmod 0666 /dev/fuse

say "smoke test: apptainer exec in a tiny image made of the host's dash"
tiny=$scratch/tiny
mkdir -p "$tiny/bin" "$tiny/etc"
touch "$tiny/etc/passwd" "$tiny/etc/group"
cp /bin/dash "$tiny/bin/sh"
for lib in $(ldd /bin/dash | grep -o '/[^ ]*'); do install -D "$lib" "$tiny$lib"; done
apptainer -s build "$scratch/tiny.sif" "$tiny"
rc=0
apptainer exec "$scratch/tiny.sif" /bin/sh -c 'exit 3' || rc=$?
[ "$rc" = 3 ] || { echo "install-apptainer: apptainer exec does not work (exit $rc, expected 3)." >&2; exit 1; }
say "installed $(dpkg-query -W -f '${Package} ${Version}' apptainer)"
