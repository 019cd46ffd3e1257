#!/usr/bin/env bash
# JavaScript client-library tests: shoukaku and lavalink-client drive Acoustic against the fake
# Discord voice server, every REST response and WebSocket message is validated against the
# lavalink-protocol schemas, and a three-node lavalink-client pool survives a node being killed.
#
# Idempotent: installs the pinned npm packages (npm ci, skipped when node_modules matches the
# lock file), builds `acoustic` and `fake-discord` (debug; CARGO_TARGET_DIR is honoured),
# generates the test media, then runs the tests with node's built-in test runner.
# Arguments are passed to `node --test` (e.g. test/shoukaku.test.js to run one file).
# ACOUSTIC_TEST_LOG=1 echoes the nodes' logs.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"

command -v node >/dev/null || { echo "run.sh: Node.js 20 or newer is needed" >&2; exit 1; }
major="$(node -p 'process.versions.node.split(".")[0]')"
if (( major < 20 )); then
    echo "run.sh: Node.js $(node --version) is too old; 20 or newer is needed" >&2
    exit 1
fi

cd "$here"
stamp="node_modules/.acoustic-lock-hash"
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    echo "run.sh: installing the pinned npm packages" >&2
    npm ci --no-audit --no-fund >&2
    echo "$want" >"$stamp"
fi

echo "run.sh: building acoustic and fake-discord (debug)" >&2
(cd "$root" && cargo build --bin acoustic -p acoustic >&2 && cargo build -p fake-discord --bin fake-discord >&2)

echo "run.sh: generating the test media" >&2
"$root/tests/media/generate.sh" >&2

export ACOUSTIC_BIN="$target/debug/acoustic"
export FAKE_DISCORD_BIN="$target/debug/fake-discord"
export ACOUSTIC_MEDIA_DIR="$root/tests/media/generated"

if (( $# == 0 )); then
    set -- test/*.test.js
fi
exec node --test --test-force-exit --test-concurrency=2 --test-timeout=240000 "$@"
