#!/usr/bin/env bash
# Install, then lint and run every test: unit tests and the end-to-end tests with real DVC (marked slow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
ruff check .
ruff format --check .
python -m pytest -ra "$@"
