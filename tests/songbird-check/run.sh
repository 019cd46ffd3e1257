#!/usr/bin/env bash
# Builds the fake-discord binary (main workspace) and the songbird cross-check (its own
# project), then runs the check. Extra arguments are passed on (a case-name filter).
#
# CARGO_TARGET_DIR, when set, is used for both builds (each in its own subfolder), so CI can
# keep the build outside the clone.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
    main_target="$CARGO_TARGET_DIR"
    check_target="$CARGO_TARGET_DIR/songbird-check"
else
    main_target="$root/target"
    check_target="$here/target"
fi

echo "songbird-check: building fake-discord" >&2
CARGO_TARGET_DIR="$main_target" cargo build --manifest-path "$root/Cargo.toml" -p fake-discord --bin fake-discord >&2
echo "songbird-check: building the songbird check (first build takes several minutes)" >&2
CARGO_TARGET_DIR="$check_target" cargo build --manifest-path "$here/Cargo.toml" >&2

FAKE_DISCORD_BIN="$main_target/debug/fake-discord" exec "$check_target/debug/songbird-check" "$@"
