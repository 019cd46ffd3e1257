"""Reading the staircase back from the audio that reached the fake Discord server.

Second *k* of every staircase file is a sine of ``200 + 100·k`` Hz at peak 0.5 (−9.03 dBFS
RMS), so the pitch of any stretch of received audio says which second of the source it came
from. The fake server decodes what it received (transport decryption, DAVE, Opus) and its
``report`` with ``window_s`` measures each window's frequency and level; this module turns
those windows into *runs* of one step, and checks the stream's counters.

Every Opus packet is 20 ms, so a position in the received stream is ``packets × 0.02`` s:
tests take a packet count as a mark before they change something and look at the windows
after the mark.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

WINDOW_S = 0.1
FRAME_S = 0.02
STEPS = 10
STAIRCASE_DBFS = -9.03


def step_hz(k: int) -> float:
    return 200.0 + 100.0 * k


def nearest_step(freq: float | None, factor: float = 1.0, tolerance: float = 0.015) -> int | None:
    """The staircase step whose frequency times ``factor`` is within ``tolerance`` (relative)
    of ``freq``, or ``None``."""
    if freq is None or freq <= 0:
        return None
    k = round((freq / factor - 200.0) / 100.0)
    if not 0 <= k < STEPS:
        return None
    want = step_hz(k) * factor
    return k if abs(freq - want) <= tolerance * want else None


@dataclass
class Window:
    start_s: float
    freq: float | None
    rms_dbfs: float


def windows(report: dict[str, Any], from_s: float = 0.0, to_s: float = math.inf) -> list[Window]:
    """The analysis windows of a report that lie wholly within ``[from_s, to_s)``."""
    out = []
    for w in report["analysis"]:
        start = float(w["start_s"])
        if start >= from_s - 1e-9 and start + WINDOW_S <= to_s + 1e-9:
            rms = w["rms_dbfs"]
            out.append(Window(start, w["frequency_hz"], -math.inf if rms is None else float(rms)))
    return out


@dataclass
class Run:
    """Consecutive windows that all read as the same step (across short unreadable gaps)."""

    step: int
    start_s: float
    duration_s: float
    rms_dbfs: float
    #: Start times of the unreadable stretches (at most ``bridge_s`` long) inside the run.
    glitches: tuple[float, ...] = ()

    def __repr__(self) -> str:
        extra = f", glitches at {', '.join(f'{g:.2f}s' for g in self.glitches)}" if self.glitches else ""
        return f"<step {self.step} at {self.start_s:.2f}s for {self.duration_s:.2f}s, {self.rms_dbfs:.1f} dBFS{extra}>"


def runs(ws: list[Window], factor: float = 1.0, min_duration_s: float = 0.25, bridge_s: float = 0.2) -> list[Run]:
    """Merges consecutive windows reading as the same step (with pitch ``factor``) into runs;
    runs shorter than ``min_duration_s`` (window edges across a step change) are dropped.

    An unreadable stretch of at most ``bridge_s`` between two windows of the same step is
    bridged and listed in the run's ``glitches``: it is a click inside the step, such as the
    one silence frame a sender puts in when a frame is not ready in time (a debug build on a
    busy machine), not a step change.
    """
    out: list[Run] = []
    current: list[Window] = []  # the readable windows of the run being built
    current_step: int | None = None
    glitches: list[float] = []
    pending: list[Window] = []  # unreadable (or other-step) windows after the current run

    def flush() -> None:
        if current_step is not None and current:
            duration = current[-1].start_s + WINDOW_S - current[0].start_s
            if duration >= min_duration_s - 1e-9:
                inner = current[1:-1] or current
                level = statistics.median(w.rms_dbfs for w in inner)
                out.append(Run(current_step, current[0].start_s, duration, level, tuple(glitches)))

    def contiguous(a: Window, b: Window) -> bool:
        return abs(b.start_s - a.start_s - WINDOW_S) < 1e-6

    for w in ws:
        k = nearest_step(w.freq, factor)
        if k is not None and k == current_step and current:
            last = pending[-1] if pending else current[-1]
            gap_ok = all(nearest_step(p.freq, factor) is None for p in pending) and (
                len(pending) * WINDOW_S <= bridge_s + 1e-9
            )
            if contiguous(last, w) and gap_ok:
                if pending:
                    glitches.append(pending[0].start_s)
                current.append(w)
                pending = []
                continue
        if k is None and current and len(pending) * WINDOW_S < bridge_s - 1e-9:
            pending.append(w)
            continue
        flush()
        current, current_step, glitches = ([w], k, []) if k is not None else ([], None, [])
        pending = []
    flush()
    return out


def seconds_of(report: dict[str, Any]) -> float:
    """Seconds of audio in a report (every packet is 20 ms)."""
    return report["packets"] * FRAME_S


def steps(rs: list[Run]) -> list[int]:
    return [r.step for r in rs]


def audible(ws: list[Window], floor_dbfs: float = -40.0) -> list[Window]:
    return [w for w in ws if w.rms_dbfs > floor_dbfs]


def level(ws: list[Window]) -> float:
    """Median RMS level of the windows, in dBFS."""
    return statistics.median(w.rms_dbfs for w in ws)


def stream_problems(report: dict[str, Any], dave: bool = True) -> list[str]:
    """What is wrong with a received stream: lost, reordered or duplicated packets, decrypt or
    decode failures, and (with ``dave``) media that was not end-to-end encrypted."""
    problems = []
    for field in (
        "lost_packets",
        "duplicates",
        "reordered",
        "transport_decrypt_failures",
        "dave_decrypt_failures",
        "opus_decode_errors",
        "bad_headers",
        "packets_from_other_address",
    ):
        if report.get(field):
            problems.append(f"{field} = {report[field]}")
    if dave:
        if report.get("dave_protocol_version", 0) < 1:
            problems.append(f"DAVE not active (protocol version {report.get('dave_protocol_version')})")
        if not report.get("dave_frames"):
            problems.append("no DAVE-encrypted frames")
        if report.get("plain_frames_while_dave"):
            problems.append(f"plain_frames_while_dave = {report['plain_frames_while_dave']}")
    return problems


def describe(report: dict[str, Any]) -> str:
    """The report's counters on one line, for assertion messages."""
    keys = (
        "packets",
        "mode",
        "dave_protocol_version",
        "dave_frames",
        "plain_frames",
        "silence_frames",
        "lost_packets",
        "timestamp_jumps",
        "transport_decrypt_failures",
        "dave_decrypt_failures",
        "gaps_over_40ms",
    )
    return ", ".join(f"{k}={report.get(k)}" for k in keys)
