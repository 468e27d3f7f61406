#!/usr/bin/env bash
# Runs every test of the project on a fresh machine. It installs what the
# tests need first: Debian packages (chromium), the real OpenStack clients in
# ./.venv, and the Docker images of the project's own binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-system.sh
scripts/setup-python.sh
if [ -x scripts/build-images.sh ]; then
  scripts/build-images.sh
fi
cargo nextest run --workspace --no-fail-fast "$@"
# nextest does not run doctests.
cargo test --workspace --doc
