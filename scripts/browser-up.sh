#!/bin/bash
# Make sure headless Chromium is here for the report's browser test
# (tests/analysis/test_report_browser.py drives it through playwright).
# On a Debian machine, as root, install Debian's chromium package when
# /usr/bin/chromium is missing; a second run does nothing.
set -euo pipefail
CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    echo "Chromium is here: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "No $CHROMIUM, and no way to install it here (needs root and apt-get):" \
         "the report's browser test will fail." >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
"$CHROMIUM" --version 2>/dev/null || true
