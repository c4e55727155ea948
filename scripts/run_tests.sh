#!/usr/bin/env bash
# Install, then run every test: unit tests and the end-to-end tests with real DVC (marked slow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
python -m pytest -ra "$@"
