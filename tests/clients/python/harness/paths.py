"""Where the repository, the built binaries and the generated media are."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[4]


def target_dir() -> Path:
    """Cargo's target directory, honouring ``CARGO_TARGET_DIR`` like cargo does."""
    value = os.environ.get("CARGO_TARGET_DIR")
    if not value:
        return REPO / "target"
    path = Path(value)
    return path if path.is_absolute() else REPO / path


def binary(name: str) -> Path:
    """A debug binary of the workspace (``ACOUSTIC_BIN`` / ``FAKE_DISCORD_BIN`` override)."""
    override = os.environ.get(f"{name.upper().replace('-', '_')}_BIN")
    path = Path(override) if override else target_dir() / "debug" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: build it with `cargo build --bin {name}`")
    return path


def media_dir() -> Path:
    """The generated test media (``tests/media/generate.sh`` writes them)."""
    override = os.environ.get("ACOUSTIC_MEDIA_DIR")
    path = Path(override) if override else REPO / "tests" / "media" / "generated"
    if not (path / "staircase" / "staircase.mp3").is_file():
        raise FileNotFoundError(f"no test media under {path}: run tests/media/generate.sh")
    return path
