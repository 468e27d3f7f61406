#!/usr/bin/env bash
# Builds the project's container image (p2pstack-node:local, FROM scratch with
# static binaries) for the Docker backend. Skipped with a message where no
# Docker engine is reachable.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! docker info >/dev/null 2>&1; then
  echo "build-images: no Docker engine reachable; Docker-backend tests will say so" >&2
  exit 0
fi
cargo run --quiet -p testbeds --bin testbed -- images
