#!/bin/sh
# Shared by every optbench image: run from %post with the image's Python.
# Installs torch (the CPU image's wheel staged in /opt/optbench/wheels, else
# the version build.json names, from the index), then the project staged in
# /opt/optbench/src, then records what is inside as labels, so `apptainer
# inspect` tells it without a run.
#   OPTBENCH_PYTHON  the interpreter to install into (default: python3)
#   OPTBENCH_TORCH   cpu or cuda: the torch build the image must end up with
# The build host's pip settings (index, CA bundle of a TLS proxy) are staged
# in pip/ for the build only and are not left in the image.
set -eu
PY=${OPTBENCH_PYTHON:-python3}
STAGE=${OPTBENCH_STAGE:-/opt/optbench}  # another folder only in tests
[ -f "$STAGE/pip/pip.conf" ] && export PIP_CONFIG_FILE="$STAGE/pip/pip.conf"

PIP="$PY -m pip install --no-cache-dir --disable-pip-version-check"

# torch first, so the project's torch>= is already met: the wheel staged in wheels/ (the CPU image), else the
# version build.json names from the index (the GPU image: PyPI's torch for Linux x86-64 is the CUDA build, with the
# CUDA libraries as nvidia-* wheels). A build that got the other kind of torch fails here, not on a cluster.
set -- "$STAGE"/wheels/*.whl
if [ -e "$1" ]; then
    $PIP "$@"
else
    $PIP "torch==$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["torch"])' "$STAGE/build.json")"
fi
"$PY" -W ignore - "${OPTBENCH_TORCH:-}" <<'PYEOF'  # numpy comes later: not a warning here
import sys

import torch

wanted, got = sys.argv[1], "cuda" if torch.version.cuda else "cpu"
if wanted and got != wanted:
    sys.exit(f"torch {torch.__version__} is a {got} build and this image needs a {wanted} build; "
             "check the torch wheel or the pip index the build used.")
PYEOF
$PIP "$STAGE/src"

# The user's plugins on top (folders staged in plugins/, requirements in plugins/requirements.txt); pip's
# report of what it installed names them in the labels below.
set --
for plugin in "$STAGE"/plugins/*/; do
    [ -d "$plugin" ] && set -- "$@" "$plugin"
done
[ -f "$STAGE/plugins/requirements.txt" ] && set -- "$@" -r "$STAGE/plugins/requirements.txt"
if [ $# -gt 0 ]; then
    $PIP --report "$STAGE/plugins.json" "$@"
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
