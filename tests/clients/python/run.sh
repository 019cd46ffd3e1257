#!/usr/bin/env bash
# Python client-library conformance: Lavalink.py, wavelink and mafic drive the real Acoustic
# node and the fake Discord voice server as a bot would, and the audio is checked.
#
# Idempotent: creates (or reuses) a virtual environment with the pinned packages of
# requirements.txt, builds `acoustic` and `fake-discord` (debug, honouring CARGO_TARGET_DIR),
# generates the test media, then runs pytest. Extra arguments go to pytest
# (e.g. `run.sh -k wavelink -x`). The exit code is pytest's.
#
# Environment: CARGO_TARGET_DIR (cargo's), ACOUSTIC_CLIENT_VENV (where the venv lives; default
# $CARGO_TARGET_DIR/client-venv), PYTHON (the interpreter that creates it; default python3).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
cd "$repo"

target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$repo/$target" ;; esac
venv="${ACOUSTIC_CLIENT_VENV:-$target/client-venv}"
python="${PYTHON:-python3}"

say() { echo "clients/python: $*" >&2; }

command -v "$python" >/dev/null || {
    say "$python not found; install Python 3.10 or later"
    exit 1
}

# 1. The virtual environment, rebuilt when requirements.txt or the interpreter changes.
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1) $("$python" --version 2>&1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.acoustic-requirements" 2>/dev/null)" != "$want" ]; then
    say "creating $venv"
    if ! "$python" -m venv --clear "$venv" >/dev/null 2>&1; then
        if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
            say "installing python3-venv with apt-get"
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -qq >&2
            apt-get install -y -qq --no-install-recommends python3-venv >&2
            "$python" -m venv --clear "$venv"
        else
            say "cannot create a virtual environment: install python3-venv"
            exit 1
        fi
    fi
    "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$here/requirements.txt"
    echo "$want" >"$venv/.acoustic-requirements"
fi

# 2. The node and the fake Discord voice server.
cargo build -p acoustic --bin acoustic
cargo build -p fake-discord --bin fake-discord

# 3. The test media.
tests/media/generate.sh

# 4. The tests.
export CARGO_TARGET_DIR="$target"
mkdir -p "$target/client-tests"
cd "$here"
set +e
"$venv/bin/python" -m pytest -p no:cacheprovider --basetemp="$target/client-tests/python" "$@"
status=$?
set -e
[ "$status" -eq 0 ] || say "failed (exit $status); node and fake-discord logs are under $target/client-tests/python"
exit "$status"
