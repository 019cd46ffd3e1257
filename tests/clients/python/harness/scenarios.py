"""The checks every library goes through, written once.

Each test module wraps its library in a small :class:`Driver`: one method per thing a bot
does (load, join, play, seek, pause, volume, filters, stop, disconnect), each a direct call of
that library's own API. The scenarios here drive the driver and judge the result from what
the bot observes (the library's return values and events) and from the audio that reached
the fake Discord server.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any, Protocol

from . import audio
from .events import EventLog
from .fake_discord import FakeDiscord
from .media import MediaServer
from .node import AcousticNode

TITLE = "Acoustic Staircase"
AUTHOR = "Acoustic Test Media"
#: One semitone up: moves every staircase step ~5.9 % off the staircase's own frequencies.
SEMITONE = 2 ** (1 / 12)
#: Lavalink's volume curve: multiplier trunc(tan(v · 0.0079) · 10000) / 10000; 50 → −7.60 dB.
VOLUME_50_DB = 20 * math.log10(math.trunc(math.tan(50 * 0.0079) * 10000) / 10000)
#: Equalizer band 6 is centred on 400 Hz, the staircase's step 2.
EQ_BAND_400HZ = 6


@dataclass
class TrackInfo:
    """What the library parsed out of a loaded track."""

    handle: Any  # the library's own track object, handed back to play()
    title: str
    author: str
    length_ms: int
    uri: str | None
    identifier: str
    is_seekable: bool
    encoded: str


class Driver(Protocol):
    fake: FakeDiscord
    node: AcousticNode
    events: EventLog

    async def load_track(self, url: str) -> TrackInfo: ...
    async def load_playlist(self, url: str) -> tuple[str, list[TrackInfo]]: ...
    async def join(self, guild_id: int) -> None: ...
    async def play(self, guild_id: int, track: TrackInfo) -> None: ...
    async def seek(self, guild_id: int, position_ms: int) -> None: ...
    async def pause(self, guild_id: int, paused: bool) -> None: ...
    async def set_volume(self, guild_id: int, volume: int) -> None: ...
    async def set_equalizer(self, guild_id: int, bands: list[tuple[int, float]]) -> None: ...
    async def set_timescale(self, guild_id: int, pitch: float) -> None:
        """Replaces every filter with a timescale filter of this pitch."""

    async def stop(self, guild_id: int) -> None: ...
    async def disconnect(self, guild_id: int) -> None: ...
    async def player_state(self, guild_id: int) -> dict[str, Any]:
        """The node's view of the player as the library fetched and parsed it: ``position``
        (ms), ``paused``, ``volume`` and ``filters`` (Lavalink JSON names)."""

    def session_id(self) -> str: ...


async def packets(d: Driver, guild_id: int) -> int:
    return await d.fake.packets(guild_id)


async def wait_audio(d: Driver, guild_id: int, from_packets: int, seconds: float) -> int:
    """Waits until ``seconds`` of packets arrived after ``from_packets``; returns the count."""
    want = from_packets + round(seconds / audio.FRAME_S)
    assert await d.fake.wait_packets(guild_id, want, timeout_s=seconds + 10), (
        f"guild {guild_id}: fewer than {want} packets arrived"
    )
    return await packets(d, guild_id)


async def wait_trailing_silence(d: Driver, guild_id: int, timeout_s: float = 5.0) -> dict[str, Any]:
    """Waits until the guild's stream ends in the five Opus silence frames a Discord sender
    sends when it stops (after a track ends, on pause, on stop); returns that report."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        report = await d.fake.report(guild_id)
        n = report["packets"]
        listed = set(report["silence_positions"])
        if n >= 5 and all(i in listed for i in range(n - 5, n)):
            return report
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(
                f"guild {guild_id}: the stream did not end in five silence frames within {timeout_s} s "
                f"(packets {n}, silence frames at {report['silence_positions']}, {report['silence_frames']} in all)"
            )
        await asyncio.sleep(0.02)


def seconds(packet_count: int) -> float:
    return packet_count * audio.FRAME_S


def check_track(t: TrackInfo, url: str) -> None:
    assert t.title == TITLE, t
    assert t.author == AUTHOR, t
    assert 9_900 <= t.length_ms <= 10_100, t
    assert t.uri == url, t
    assert t.identifier == url, t
    assert t.is_seekable, t
    assert t.encoded, t


async def load(d: Driver, media: MediaServer) -> TrackInfo:
    """A single file over http, then the M3U playlist of three files."""
    url = media.url("staircase/staircase.mp3")
    track = await d.load_track(url)
    check_track(track, url)

    name, tracks = await d.load_playlist(media.url("playlist.m3u"))
    assert name == "playlist.m3u", name
    assert [t.uri for t in tracks] == [
        media.url("staircase/staircase.mp3"),
        media.url("staircase/staircase.flac"),
        media.url("staircase/staircase.ogg"),
    ], tracks
    assert all(t.title == TITLE and t.is_seekable for t in tracks), tracks
    return track


async def join(d: Driver, guild_id: int) -> None:
    await d.join(guild_id)
    assert await d.fake.wait_connected(guild_id, 10), f"guild {guild_id}: the node never completed the voice handshake"


async def play_and_seek(d: Driver, guild_id: int, track: TrackInfo) -> None:
    """Plays the MP3 staircase, seeks to 5 s after ~2.5 s, and lets it finish."""
    await join(d, guild_id)
    mark = await packets(d, guild_id)
    since = d.events.mark()
    await d.play(guild_id, track)
    started = await d.events.wait("start", guild_id, since)
    assert started.title == TITLE, started
    assert await d.fake.wait_dave_ready(guild_id, 10), "DAVE never became ready"

    await wait_audio(d, guild_id, mark, 2.5)
    await d.seek(guild_id, 5_000)
    state = await d.player_state(guild_id)
    assert 4_900 <= state["position"] <= 6_500, f"position after seek: {state}"

    ended = await d.events.wait("end", guild_id, since, timeout=15)
    assert ended.reason == "finished", ended
    assert ended.title == TITLE, ended
    await wait_trailing_silence(d, guild_id)  # the last frames of the track have arrived

    report = await d.fake.report(guild_id, window_s=audio.WINDOW_S)
    assert not audio.stream_problems(report), f"{audio.stream_problems(report)}: {audio.describe(report)}"
    runs = audio.runs(audio.windows(report, seconds(mark)))
    print(f"play_and_seek guild {guild_id}: {audio.describe(report)}; runs {runs}")
    # 0, 1 and part of 2 before the seek; from the seek on, 5 (700 Hz) to the end.
    assert audio.steps(runs) == [0, 1, 2, 5, 6, 7, 8, 9], runs
    for r in runs:
        if r.step in (0, 1, 5, 6, 7, 8):
            assert 0.75 <= r.duration_s <= 1.1, f"step {r.step} lasted {r.duration_s:.2f} s: {runs}"
        assert abs(r.rms_dbfs - audio.STAIRCASE_DBFS) < 1.5, f"level of step {r.step}: {runs}"
    assert runs[2].duration_s <= 0.8, f"the seek came late: {runs}"


async def filters_pause_volume_stop(d: Driver, guild_id: int, flac: TrackInfo) -> None:
    """Equalizer (set before play), then a timescale pitch shift, pause/resume, volume 50,
    stop — each read back from the audio."""
    await join(d, guild_id)
    mark0 = await packets(d, guild_id)
    since = d.events.mark()
    await d.set_equalizer(guild_id, [(EQ_BAND_400HZ, -0.25)])
    await d.play(guild_id, flac)
    await d.events.wait("start", guild_id, since)

    # Equalizer: band 6 at -0.25 cancels 400 Hz (step 2) and leaves 200 Hz (step 0) nearly whole.
    mark1 = await wait_audio(d, guild_id, mark0, 3.5)
    state = await d.player_state(guild_id)
    eq = state["filters"].get("equalizer") or []
    assert any(b["band"] == EQ_BAND_400HZ and abs(b["gain"] + 0.25) < 1e-6 for b in eq), state

    # Timescale: one semitone up.
    await d.set_timescale(guild_id, SEMITONE)
    mark2 = await wait_audio(d, guild_id, mark1, 1.4)
    state = await d.player_state(guild_id)
    # (wavelink always lists all 15 bands; "no equalizer" is every gain at 0.)
    assert not any(b["gain"] for b in state["filters"].get("equalizer") or []), f"equalizer left on: {state}"
    assert abs(state["filters"]["timescale"]["pitch"] - SEMITONE) < 1e-6, state

    # Pause: nothing is sent (after the last buffered frames and five silence frames) and the
    # position stands still; resume goes on from there.
    await d.pause(guild_id, True)
    before = (await wait_trailing_silence(d, guild_id))["packets"]
    paused_at = await d.player_state(guild_id)
    assert paused_at["paused"] is True, paused_at
    await asyncio.sleep(0.6)  # a stretch with nothing to send: there is no event to wait for
    after = await packets(d, guild_id)
    still = await d.player_state(guild_id)
    assert after == before, f"{after - before} packets arrived while paused"
    assert before - mark2 <= 25, f"{before - mark2} packets after pause"
    assert abs(still["position"] - paused_at["position"]) <= 100, (paused_at, still)
    await d.pause(guild_id, False)
    mark3 = await wait_audio(d, guild_id, after, 0.8)

    # Volume 50.
    await d.set_volume(guild_id, 50)
    mark4 = await wait_audio(d, guild_id, mark3, 0.8)
    state = await d.player_state(guild_id)
    assert state["volume"] == 50, state

    await d.stop(guild_id)
    ended = await d.events.wait("end", guild_id, since)
    assert ended.reason == "stopped", ended
    await wait_trailing_silence(d, guild_id)

    report = await d.fake.report(guild_id, window_s=audio.WINDOW_S)
    assert not audio.stream_problems(report), f"{audio.stream_problems(report)}: {audio.describe(report)}"

    eq_windows = audio.windows(report, seconds(mark0), seconds(mark1))
    onset = audio.audible(eq_windows)[0].start_s
    step0 = audio.level(audio.windows(report, onset + 0.2, onset + 0.8))
    step2 = audio.level(audio.windows(report, onset + 2.2, onset + 2.8))
    eq_runs = audio.runs(eq_windows)
    print(f"filters guild {guild_id}: {audio.describe(report)}")
    print(f"  equalizer: 200 Hz at {step0:.1f} dBFS, 400 Hz at {step2:.1f} dBFS; runs {eq_runs}")
    assert audio.steps(eq_runs)[:2] == [0, 1], eq_runs
    assert step0 > audio.STAIRCASE_DBFS - 3, f"200 Hz under the equalizer: {step0:.1f} dBFS"
    assert step2 < step0 - 20, f"400 Hz not notched: {step2:.1f} dBFS vs 200 Hz at {step0:.1f} dBFS"

    pitch_windows = audio.windows(report, seconds(mark1) + 0.4, seconds(mark2))
    shifted = audio.runs(pitch_windows, factor=SEMITONE)
    print(f"  timescale: {shifted}")
    assert sum(r.duration_s for r in shifted) >= 0.6, f"no semitone-up staircase after set_timescale: {shifted}"
    assert not audio.runs(pitch_windows), f"unshifted staircase after set_timescale: {audio.runs(pitch_windows)}"
    # Continuity over the pause: the step heard before it is the one heard after it.
    before_pause = audio.runs(audio.windows(report, seconds(mark1) + 0.4, seconds(before)), factor=SEMITONE)
    after_pause = audio.runs(audio.windows(report, seconds(before), seconds(mark3)), factor=SEMITONE, min_duration_s=0.2)
    print(f"  pause: {before_pause[-1:]} then {after_pause[:1]}, {after - before} packets while paused")
    assert before_pause and after_pause, (before_pause, after_pause)
    assert after_pause[0].step in (before_pause[-1].step, before_pause[-1].step + 1), (before_pause, after_pause)

    full = audio.level(audio.audible(audio.windows(report, seconds(mark3) - 0.5, seconds(mark3))))
    half = audio.level(audio.audible(audio.windows(report, seconds(mark3) + 0.3, seconds(mark4))))
    print(f"  volume 50: {full:.2f} -> {half:.2f} dBFS ({half - full:+.2f} dB, want {VOLUME_50_DB:+.2f})")
    assert abs((half - full) - VOLUME_50_DB) < 1.0, (
        f"volume 50 changed the level by {half - full:.2f} dB, want {VOLUME_50_DB:.2f}"
    )


async def disconnect(d: Driver, guild_id: int, gateway_sent: list[dict[str, Any]]) -> None:
    """Leaving voice: the library sends op 4 with no channel and destroys the node's player;
    the node closes its voice connection."""
    events_before = len(await d.fake.events())
    await d.disconnect(guild_id)
    leave = [p for p in gateway_sent if int(p["d"]["guild_id"]) == guild_id][-1]
    assert leave["d"]["channel_id"] is None, gateway_sent

    for _ in range(100):
        status, players = d.node.rest("GET", f"/v4/sessions/{d.session_id()}/players")
        assert status == 200, players
        if all(p["guildId"] != str(guild_id) for p in players):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"the node still has a player for guild {guild_id}: {players}")

    for _ in range(100):
        closed = [
            e
            for e in (await d.fake.events())[events_before:]
            if e["kind"] == "closed" and e.get("guild_id") == guild_id
        ]
        if closed:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"guild {guild_id}: the voice connection was not closed")
    assert closed[0]["by"] == "client", closed
