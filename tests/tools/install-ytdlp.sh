#!/usr/bin/env bash
# Installs yt-dlp from PyPI into a private virtual environment, for the yt-dlp resolver's
# integration test and benchmark. Idempotent: a second run with the same version does nothing.
#
# Where: $ACOUSTIC_YTDLP_VENV if set, else <cargo target dir>/ytdlp-venv.
# Version: $ACOUSTIC_YTDLP_VERSION if set, else the pinned version below.
#
# On success the last line of stdout is
#   ACOUSTIC_YTDLP_PYTHON=<path to the venv's python>
# which the test and the benchmark read (they also look at the default location themselves).
set -euo pipefail

version="${ACOUSTIC_YTDLP_VERSION:-2026.11.23}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
venv="${ACOUSTIC_YTDLP_VENV:-$target/ytdlp-venv}"
py="$venv/bin/python"

python="${PYTHON:-}"
if [ -z "$python" ]; then
    for candidate in python3 python; do
        if command -v "$candidate" >/dev/null 2>&1; then
            python="$(command -v "$candidate")"
            break
        fi
    done
fi
if [ -z "$python" ]; then
    echo "install-ytdlp: no python3 on PATH; cannot install yt-dlp" >&2
    exit 2
fi

installed_version() {
    "$py" -c 'import yt_dlp.version as v; print(v.__version__)' 2>/dev/null || true
}

if [ -x "$py" ] && [ "$(installed_version)" = "$version" ]; then
    echo "install-ytdlp: yt-dlp $version already in $venv" >&2
else
    echo "install-ytdlp: installing yt-dlp $version into $venv" >&2
    mkdir -p "$(dirname "$venv")"
    if [ ! -x "$py" ]; then
        "$python" -m venv "$venv"
    fi
    # yt-dlp needs nothing beyond the standard library for the extractors used here; its
    # optional extras (websockets, curl-cffi, ...) are left out to keep the install small.
    "$py" -m pip install --disable-pip-version-check --quiet --no-deps "yt-dlp==$version"
    got="$(installed_version)"
    if [ "$got" != "$version" ]; then
        echo "install-ytdlp: expected yt-dlp $version, found '${got}'" >&2
        exit 1
    fi
fi

echo "ACOUSTIC_YTDLP_PYTHON=$py"
