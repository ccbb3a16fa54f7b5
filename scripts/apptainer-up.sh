#!/bin/bash
# Make sure Apptainer runs here. Real clusters have it already; on a fresh
# Debian 12 machine, as root, install it with this project's
# scripts/install-apptainer.sh, which keeps the .deb it builds in a cache
# folder (OPTBENCH_APPTAINER_CACHE, default /var/cache/optbench) so that a
# second install needs no download.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${OPTBENCH_APPTAINER_CACHE:-/var/cache/optbench}

if command -v apptainer >/dev/null 2>&1; then
    echo "Apptainer is here: $(apptainer --version)"
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "No apptainer on PATH, and no way to install it here (needs root and apt-get):" \
         "container tests will fail." >&2
    exit 0
fi
bash "$HERE/install-apptainer.sh" "$CACHE"
apptainer --version
