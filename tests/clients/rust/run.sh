#!/usr/bin/env bash
# Rust client-library test: lavalink-rs drives Acoustic as a bot would, against the fake Discord
# voice server, and the audio that reaches it is checked (see tests/clients/README-rust.md).
#
# Idempotent: builds `acoustic` and `fake-discord` from the main workspace (debug), generates the
# test media, builds this project (its own workspace and lock file) and runs its check binary.
# CARGO_TARGET_DIR, when set, is used for both builds (this project in its own subfolder), so CI
# can keep the build outside the clone. ACOUSTIC_TEST_LOG=1 echoes the node's log.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"

if [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
    main_target="$CARGO_TARGET_DIR"
    check_target="$CARGO_TARGET_DIR/rust-client"
else
    main_target="$root/target"
    check_target="$here/target"
fi

echo "rust-client: building acoustic and fake-discord (debug)" >&2
CARGO_TARGET_DIR="$main_target" cargo build --manifest-path "$root/Cargo.toml" -p acoustic --bin acoustic >&2
CARGO_TARGET_DIR="$main_target" cargo build --manifest-path "$root/Cargo.toml" -p fake-discord --bin fake-discord >&2

echo "rust-client: generating the test media" >&2
"$root/tests/media/generate.sh" >&2

echo "rust-client: building the lavalink-rs check" >&2
CARGO_TARGET_DIR="$check_target" cargo build --manifest-path "$here/Cargo.toml" >&2

export ACOUSTIC_BIN="$main_target/debug/acoustic"
export FAKE_DISCORD_BIN="$main_target/debug/fake-discord"
export ACOUSTIC_MEDIA_DIR="$root/tests/media/generated"
exec "$check_target/debug/lavalink-rs-check"
