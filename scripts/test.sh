#!/usr/bin/env bash
# Installs the test tools, generates the test media, builds, and runs every test:
# the Rust suites (unit, protocol conformance, audio and voice end to end, faults, shutdown,
# metrics), the songbird cross-check of the fake Discord server, and the real client
# libraries (Python and JavaScript) against the node.
#
#   ./scripts/test.sh             everything
#   ./scripts/test.sh --rust      only the Rust suites
#   extra arguments after --rust are passed to cargo nextest / cargo test
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --test || exit 1
tests/media/generate.sh || exit 1

only_rust=0
if [ "${1:-}" = "--rust" ]; then
  only_rust=1
  shift
fi

failed=()
start=$SECONDS
# Prints how long each phase took, so a slow CI run shows where the time went.
phase() { echo "test.sh: $1 done at $((SECONDS - start)) s" >&2; }
# Benchmarks are not run here, but they must keep compiling.
cargo build --benches || failed+=("benches build")
phase "benches build"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@" || failed+=("rust tests")
else
  cargo test --workspace --no-fail-fast "$@" || failed+=("rust tests")
fi
phase "rust tests"

if [ "$only_rust" = 0 ]; then
  tests/songbird-check/run.sh || failed+=("songbird cross-check")
  phase "songbird cross-check"
  for suite in tests/clients/python/run.sh tests/clients/js/run.sh tests/clients/rust/run.sh; do
    if [ -x "$suite" ]; then
      "$suite" || failed+=("$suite")
      phase "$suite"
    fi
  done
fi

if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "all tests passed"
