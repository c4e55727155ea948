#!/usr/bin/env bash
# Install, then lint, type-check and run every test: unit tests and the end-to-end tests with real DVC (marked slow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
ruff check .
ruff format --check .
mypy  # pipeline/, preprocess/, train/, evaluate/ (pyproject.toml: [tool.mypy])
python -m pytest -ra "$@"
