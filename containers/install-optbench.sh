#!/bin/sh
# Shared by every optbench image: run from %post with the image's Python.
# Installs the project staged in /opt/optbench/src (and any wheels staged in
# /opt/optbench/wheels first, e.g. torch for the CPU image), then records
# what is inside as labels, so `apptainer inspect` tells it without a run.
#   OPTBENCH_PYTHON  the interpreter to install into (default: python3)
# The build host's pip settings (index, CA bundle of a TLS proxy) are staged
# in pip/ for the build only and are not left in the image.
set -eu
PY=${OPTBENCH_PYTHON:-python3}
STAGE=/opt/optbench
[ -f "$STAGE/pip/pip.conf" ] && export PIP_CONFIG_FILE="$STAGE/pip/pip.conf"

for wheel in "$STAGE"/wheels/*.whl; do
    [ -e "$wheel" ] || continue
    "$PY" -m pip install --no-cache-dir --disable-pip-version-check "$wheel"
done
# A torch already present (the wheel above, or the base image's CUDA build) satisfies the project's torch>=.
"$PY" -m pip install --no-cache-dir --disable-pip-version-check "$STAGE/src"

# The user's plugins on top (folders staged in plugins/, requirements in plugins/requirements.txt); pip's
# report of what it installed names them in the labels below.
set --
for plugin in "$STAGE"/plugins/*/; do
    [ -d "$plugin" ] && set -- "$@" "$plugin"
done
[ -f "$STAGE/plugins/requirements.txt" ] && set -- "$@" -r "$STAGE/plugins/requirements.txt"
if [ $# -gt 0 ]; then
    "$PY" -m pip install --no-cache-dir --disable-pip-version-check --report "$STAGE/plugins.json" "$@"
fi
rm -rf "$STAGE/src" "$STAGE/wheels" "$STAGE/pip" "$STAGE/plugins"

"$PY" - "$STAGE/build.json" "$STAGE/plugins.json" >> "${APPTAINER_LABELS:-${SINGULARITY_LABELS:-/dev/null}}" <<'PYEOF'
import json, os, platform, sys
from importlib import metadata

import torch

build = json.load(open(sys.argv[1]))
labels = {
    "optbench.version": metadata.version("optbench"),
    "optbench.commit": build.get("commit") or "unknown",
    "optbench.dirty": str(build.get("dirty")).lower(),
    "optbench.image": build["image"],
    "python.version": platform.python_version(),
    "torch.version": torch.__version__,
    "torch.cuda": torch.version.cuda or "none",
}
for package in ("numpy", "submitit", "wandb"):
    labels[f"{package}.version"] = metadata.version(package)
installed = json.load(open(sys.argv[2]))["install"] if os.path.exists(sys.argv[2]) else []
for item in installed:
    if item.get("requested"):
        labels[f"plugin.{item['metadata']['name']}.version"] = item["metadata"]["version"]
for key, value in labels.items():
    print(key, value)
PYEOF
rm -f "$STAGE/plugins.json"
