#!/bin/bash
# Make sure Apptainer runs here. Real clusters have it already; on a fresh
# Debian 12 machine of this project's kind, as root, install it with the
# workplace's recipe (../shared/reference/install-apptainer.sh), keeping the
# repacked .deb so a second install needs no download.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RECIPE=${APPTAINER_RECIPE:-$ROOT/../shared/reference/install-apptainer.sh}
CACHE=${APPTAINER_CACHE:-/var/cache/optbench}

if command -v apptainer >/dev/null 2>&1; then
    echo "Apptainer is here: $(apptainer --version)"
    exit 0
fi
if [ "$(id -u)" != 0 ] || [ ! -f "$RECIPE" ]; then
    echo "No apptainer on PATH, and no way to install it here (needs root and $RECIPE):" \
         "container tests will fail." >&2
    exit 0
fi
mkdir -p "$CACHE"
deb=$(ls "$CACHE"/apptainer_*+sidglibc1_amd64.deb 2>/dev/null | tail -1 || true)
if [ -n "$deb" ]; then
    APPTAINER_DEB=$deb bash "$RECIPE"
else
    APPTAINER_WORK=$CACHE/work bash "$RECIPE"
    cp "$CACHE"/work/apptainer_*+sidglibc1_amd64.deb "$CACHE"/
fi
apptainer --version
