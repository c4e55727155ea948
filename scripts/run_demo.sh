#!/usr/bin/env bash
# Install, then run the whole demo experiment with DVC and print its headline results.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
dvc repro
python -m pipeline summary
