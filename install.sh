#!/usr/bin/env bash
# Sets up .venv/ with the whole stack and kpt_plugin itself (non-editable, so `mim` finds it).
# Usage: bash install.sh            (PYTHON=python3.11 by default)
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
C=requirements/constraints.txt
[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check "$@" 2> >(grep -v "^WARNING: Location" >&2); }
pip install -q -c $C -U pip "setuptools<82" wheel
# torch first and pinned: the only CPU build is the local 2.13.0 wheel.
pip install -q -c $C torch==2.13.0 "numpy>=2,<2.4" cython
pip install -q -c $C -r requirements/runtime.txt
# mmpose/mmdet declare deps that break this stack (chumpy, torchvision, mmcv full): install them bare.
pip install -q -c $C --no-deps mmdet==3.3.0 mmpose==1.3.2
# openmim's opendatalab/openxlab deps pin setuptools 60 and old requests/tqdm; mim never imports them.
pip install -q -c $C --no-deps openmim
pip install -q -c $C click colorama model-index pandas requests rich tabulate
# xtcocotools' wheels are built against numpy 1; build it against the numpy 2 we have.
pip install -q -c $C --no-build-isolation --no-binary xtcocotools xtcocotools
pip install -q -c $C -r requirements/tests.txt
# the project itself, as a regular install (its deps are already satisfied above)
pip install -q -c $C --no-deps --no-build-isolation .
.venv/bin/python -c "import kpt_plugin, mmpose, mmcv, mmengine, torch, numpy, cv2; print('kpt_plugin', kpt_plugin.__version__, '| mmpose', mmpose.__version__, '| torch', torch.__version__, '| numpy', numpy.__version__, '| cv2', cv2.__version__)"
