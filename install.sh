#!/usr/bin/env bash
# Installs the stack and kpt_plugin itself (a regular install: `mim` finds it, kpt_plugin.pth lands in site-packages).
#
#   bash install.sh                        .venv/ for this repo (PYTHON=python3.11 by default), with the test deps
#   bash install.sh --into "$VIRTUAL_ENV"  into an existing env (a venv / conda prefix, or its python executable):
#                                          torch, numpy, opencv, mmcv (full or lite), mmengine, mmdet and mmpose
#                                          stay as they are when they fit kpt_plugin; only what is missing is added
#
# Plain `pip install .` resolves mmpose's own dependencies, which break on torch 2.13 CPU + numpy 2: chumpy does not
# build in an isolated env, PyPI's xtcocotools wheel is built for numpy 1, torchvision's wheel does not match a CPU
# torch, and mmpose/mmdet ask for the full mmcv. This script installs around each of them. It is quiet; pip's
# errors still stop it (only the dependency conflicts listed in KNOWN_CONFLICTS below are hidden).
set -euo pipefail

usage() { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; }
INTO=
while [ $# -gt 0 ]; do
  case "$1" in
    --into) INTO=${2:?--into needs an environment directory or a python executable}; shift 2 ;;
    --into=*) INTO=${1#--into=}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

if [ -n "$INTO" ]; then  # resolved before the cd below: relative to where the user is
  if [ -d "$INTO" ]; then PYT=$INTO/bin/python; else PYT=$(command -v "$INTO" || echo "$INTO"); fi
  [ -x "$PYT" ] || { echo "install.sh: no python at $PYT (pass an env prefix or a python executable)" >&2; exit 2; }
  PYT=$(cd "$(dirname "$PYT")" && pwd)/$(basename "$PYT")
  "$PYT" -m pip --version >/dev/null 2>&1 || { echo "install.sh: $PYT has no pip (python -m ensurepip)" >&2; exit 2; }
fi
cd "$(dirname "$0")"
if [ -z "$INTO" ]; then
  PY=${PYTHON:-python3.11}
  command -v "$PY" >/dev/null || PY=python3
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  PYT=$PWD/.venv/bin/python
fi

# pip's conflict report after each step lists what --no-deps skipped on purpose: openmim's opendatalab (mim never
# imports it), mmpose's chumpy (only its SMPL tools use it) and torchvision (kpt_plugin._compat covers its one use).
KNOWN_CONFLICTS='^(openmim [^ ]+ requires opendatalab|mmpose [^ ]+ requires (chumpy|torchvision)),'
quiet_pip_stderr() {
  awk -v known="$KNOWN_CONFLICTS" '
    /^ERROR: pip.s dependency resolver does not currently take into account/ { header = $0; block = 1; next }
    block && / requires / { if ($0 ~ known) next; if (header != "") { print header; header = "" } print; next }
    { block = 0; header = "" }
    /^WARNING: Location .* is ignored/ { next }   # a pip config naming an index folder that is absent here
    { print; fflush() }' >&2
}
# pip's stderr through the filter, its stdout as is; pipefail passes pip's exit status on
pip() { { "$PYT" -m pip --disable-pip-version-check "$@" 2>&1 1>&3 3>&- | quiet_pip_stderr; } 3>&1; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# The pins: requirements/constraints.txt for our .venv; with --into, whatever the env has that fits stays pinned.
"$PYT" requirements/env_pins.py "$TMP" ${INTO:+--keep}
C=$TMP/constraints.txt

if [ -z "$INTO" ]; then pip install -q -c "$C" -U pip; fi
pip install -q -c "$C" "setuptools<82" wheel
# torch first: pinned to the local CPU wheel (2.13.0) unless the env already has one.
pip install -q -c "$C" torch numpy cython
pip install -q -c "$C" -r "$TMP/runtime.txt"
# mmpose/mmdet declare deps that break this stack (chumpy, torchvision, the full mmcv): install them bare.
pip install -q -c "$C" --no-deps mmdet mmpose
# openmim's opendatalab/openxlab deps pin setuptools 60 and old requests/tqdm; mim never imports them.
pip install -q -c "$C" --no-deps openmim
pip install -q -c "$C" click colorama model-index pandas requests rich tabulate
# xtcocotools' wheels are built against numpy 1: build it against the numpy here (also replacing a broken one).
if ! "$PYT" -c "import xtcocotools._mask" >/dev/null 2>&1; then
  pip install -q -c "$C" --no-build-isolation --no-binary xtcocotools --force-reinstall --no-deps xtcocotools
fi
if [ -z "$INTO" ]; then pip install -q -c "$C" -r requirements/tests.txt -r requirements/serving.txt; fi
# the project itself, as a regular install (its deps are satisfied above)
pip install -q -c "$C" --no-deps --no-build-isolation .

# A fresh interpreter outside the repo, not importing kpt_plugin first: MMPose's entry points work via kpt_plugin.pth.
(cd "$TMP" && "$PYT" -) <<'EOF'
import sys
import mmpose.apis  # noqa: F401  (needs the compat layer: mmcv.ops, torchvision)
assert '_kpt_plugin_hook' in sys.modules, 'kpt_plugin.pth did not run: is site-packages writable and processed?'
import cv2, kpt_plugin, mmcv, mmengine, mmpose, numpy, torch
print('kpt_plugin', kpt_plugin.__version__, '| mmpose', mmpose.__version__, '| mmcv', mmcv.__version__, '| torch',
      torch.__version__, '| numpy', numpy.__version__, '| cv2', cv2.__version__)
try:
    import torchvision  # noqa: F401
except Exception as e:  # noqa: BLE001
    if not isinstance(e, ModuleNotFoundError):
        print(f'note: torchvision is installed but unusable with this torch ({e}); kpt_plugin works around it, '
              'other code importing torchvision will fail (pip uninstall torchvision, or install the build '
              'matching this torch)', file=sys.stderr)
EOF
