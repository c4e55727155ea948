#!/usr/bin/env bash
# Create .venv (Python 3.11) and install the project with its test tools. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# pip's notes about local package mirrors it skips ("Location ... is ignored") are noise;
# pipefail still fails the script when pip itself fails.
quiet() { "$@" 2>&1 | sed '/is ignored: it is neither a file nor a directory/d'; }
quiet .venv/bin/python -m pip install -q --upgrade pip
quiet .venv/bin/python -m pip install -q -e ".[dev]"
.venv/bin/python -c "import torch, torchvision, cv2, h5py, dvc, ffmpeg; assert hasattr(cv2, 'optflow'), 'opencv-contrib is missing'"
