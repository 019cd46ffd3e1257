#!/usr/bin/env bash
# Installs the test tools, generates the test media, builds, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --test
if [ -x tests/media/generate.sh ]; then
  tests/media/generate.sh
fi
# Benchmarks are not run here, but they must keep compiling.
cargo build --benches
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
