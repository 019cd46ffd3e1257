#!/usr/bin/env bash
# Builds Acoustic in release mode and runs it with ./application.yml (or the arguments given).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release --bin acoustic
exec "${CARGO_TARGET_DIR:-target}/release/acoustic" "$@"
