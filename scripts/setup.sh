#!/usr/bin/env bash
# Create .venv (Python 3.11) and install the project with its test tools. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# pip's "Location ... is ignored" notes about local mirrors are noise; errors still fail the script.
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
.venv/bin/python -m pip install -q -e ".[dev]" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import torch, torchvision, cv2, h5py, dvc, ffmpeg; assert hasattr(cv2, 'optflow')"
