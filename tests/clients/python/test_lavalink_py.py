"""Lavalink.py (``lavalink`` 5.x) drives Acoustic as it drives Lavalink.

The bot is a ``discord.py`` client written the way Lavalink.py's documentation sets one up: a
``lavalink.Client`` created with the bot's user id, one ``add_node`` call (the only line that
names the node), a ``discord.VoiceProtocol`` that forwards the voice updates to
``voice_update_handler``, and ``@lavalink.listener`` hooks for the events.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import discord
import lavalink
import pytest
import pytest_asyncio
from lavalink.errors import ClientError
from lavalink.events import NodeReadyEvent, TrackEndEvent, TrackStartEvent
from lavalink.filters import Equalizer, Timescale

from harness import audio, scenarios
from harness.events import EventLog, Seen
from harness.fake_discord import FakeDiscord
from harness.gateway import FakeGateway
from harness.media import MediaServer
from harness.node import AcousticNode
from harness.scenarios import TrackInfo

GUILD_PLAY = 101
GUILD_FILTERS = 102
GUILD_RESUME = 103
GUILD_RECONNECT = 104
GUILDS = [GUILD_PLAY, GUILD_FILTERS, GUILD_RESUME, GUILD_RECONNECT]


class LavalinkVoiceClient(discord.VoiceProtocol):
    """discord.py's voice hook for Lavalink.py: Discord's voice updates go to Lavalink.py."""

    def __init__(self, client: MusicBot, channel: discord.abc.Connectable) -> None:
        self.client = client
        self.channel = channel
        self.guild_id = channel.guild.id  # type: ignore[attr-defined]
        self.lavalink = client.lavalink
        self._destroyed = False

    async def on_voice_server_update(self, data):  # type: ignore[override]
        await self.lavalink.voice_update_handler({"t": "VOICE_SERVER_UPDATE", "d": data})

    async def on_voice_state_update(self, data):  # type: ignore[override]
        if not data["channel_id"]:
            await self._destroy()
            return
        self.channel = self.client.get_channel(int(data["channel_id"]))
        await self.lavalink.voice_update_handler({"t": "VOICE_STATE_UPDATE", "d": data})

    async def connect(self, *, timeout: float, reconnect: bool, self_deaf: bool = False, self_mute: bool = False) -> None:
        self.lavalink.player_manager.create(guild_id=self.guild_id)
        await self.channel.guild.change_voice_state(channel=self.channel, self_mute=self_mute, self_deaf=self_deaf)  # type: ignore[attr-defined]

    async def disconnect(self, *, force: bool = False) -> None:
        player = self.lavalink.player_manager.get(self.guild_id)
        if not force and not player.is_connected:
            return
        await self.channel.guild.change_voice_state(channel=None)  # type: ignore[attr-defined]
        player.channel_id = None
        await self._destroy()

    async def _destroy(self) -> None:
        self.cleanup()
        if self._destroyed:
            return
        self._destroyed = True
        try:
            await self.lavalink.player_manager.destroy(self.guild_id)
        except ClientError:
            pass


class Music:
    """The bot's music module: Lavalink.py event hooks."""

    def __init__(self, events: EventLog) -> None:
        self.events = events

    @lavalink.listener(NodeReadyEvent)
    async def on_node_ready(self, event: NodeReadyEvent) -> None:
        self.events.add(Seen("ready", None, raw=event))

    @lavalink.listener(TrackStartEvent)
    async def on_track_start(self, event: TrackStartEvent) -> None:
        self.events.add(Seen("start", event.player.guild_id, event.track.title, raw=event))

    @lavalink.listener(TrackEndEvent)
    async def on_track_end(self, event: TrackEndEvent) -> None:
        title = event.track.title if event.track else None
        self.events.add(Seen("end", event.player.guild_id, title, event.reason.value, raw=event))


class MusicBot(discord.Client):
    def __init__(self, node: AcousticNode, events: EventLog, resume_session_id: str | None = None) -> None:
        super().__init__(intents=discord.Intents.default(), guild_ready_timeout=0.1)
        self.node_config = node
        self.events = events
        self.resume_session_id = resume_session_id
        self.lavalink: lavalink.Client = None  # type: ignore[assignment]

    async def setup_hook(self) -> None:
        assert self.user is not None
        self.lavalink = lavalink.Client(self.user.id)
        # The one line that differs from a bot using Lavalink: the node's address and password.
        self.lavalink.add_node(
            self.node_config.host,
            self.node_config.port,
            self.node_config.password,
            "us",
            name="acoustic",
            session_id=self.resume_session_id,
        )
        self.lavalink.add_event_hooks(Music(self.events))


def track_info(t: lavalink.AudioTrack) -> TrackInfo:
    return TrackInfo(t, t.title, t.author, t.duration, t.uri, t.identifier, t.is_seekable, t.track or "")


class LavalinkPyDriver:
    def __init__(self, bot: MusicBot, gateway: FakeGateway, fake: FakeDiscord, node: AcousticNode) -> None:
        self.bot, self.gateway, self.fake, self.node = bot, gateway, fake, node
        self.events = bot.events

    @property
    def lavalink_node(self) -> lavalink.Node:
        return self.bot.lavalink.node_manager.nodes[0]

    def player(self, guild_id: int) -> lavalink.DefaultPlayer:
        player = self.bot.lavalink.player_manager.get(guild_id)
        assert player is not None, f"no player for guild {guild_id}"
        return player

    def session_id(self) -> str:
        sid = self.lavalink_node.session_id
        assert sid
        return sid

    async def load_track(self, url: str) -> TrackInfo:
        result = await self.bot.lavalink.get_tracks(url)
        assert result.load_type == lavalink.LoadType.TRACK, result.load_type
        return track_info(result.tracks[0])

    async def load_playlist(self, url: str) -> tuple[str, list[TrackInfo]]:
        result = await self.bot.lavalink.get_tracks(url)
        assert result.load_type == lavalink.LoadType.PLAYLIST, result.load_type
        return result.playlist_info.name, [track_info(t) for t in result.tracks]

    async def join(self, guild_id: int) -> None:
        await self.gateway.voice_channel(guild_id).connect(cls=LavalinkVoiceClient)
        await self.gateway.settle()

    async def play(self, guild_id: int, track: TrackInfo) -> None:
        await self.player(guild_id).play(track.handle)

    async def seek(self, guild_id: int, position_ms: int) -> None:
        await self.player(guild_id).seek(position_ms)

    async def pause(self, guild_id: int, paused: bool) -> None:
        await self.player(guild_id).set_pause(paused)

    async def set_volume(self, guild_id: int, volume: int) -> None:
        await self.player(guild_id).set_volume(volume)

    async def set_equalizer(self, guild_id: int, bands: list[tuple[int, float]]) -> None:
        eq = Equalizer()
        eq.update(bands=bands)
        await self.player(guild_id).set_filter(eq)

    async def set_timescale(self, guild_id: int, pitch: float) -> None:
        timescale = Timescale()
        timescale.update(pitch=pitch)
        await self.player(guild_id).set_filters(timescale, replace=True)

    async def stop(self, guild_id: int) -> None:
        await self.player(guild_id).stop()

    async def disconnect(self, guild_id: int) -> None:
        voice = self.bot.get_guild(guild_id).voice_client  # type: ignore[union-attr]
        assert voice is not None
        await voice.disconnect(force=True)
        await self.gateway.settle()

    async def player_state(self, guild_id: int) -> dict:
        raw = await self.lavalink_node.get_player(guild_id)
        return {
            "position": raw["state"]["position"],
            "paused": raw["paused"],
            "volume": raw["volume"],
            "filters": raw["filters"],
        }


async def start_bot(node: AcousticNode, fake: FakeDiscord, resume_session_id: str | None = None, in_voice=None):
    events = EventLog()
    bot = MusicBot(node, events, resume_session_id)
    gateway = FakeGateway(bot, fake)
    await gateway.start(GUILDS, in_voice)
    await events.wait("ready", timeout=10)
    return bot, gateway


@pytest_asyncio.fixture(scope="module")
async def driver(node: AcousticNode, fake_discord: FakeDiscord) -> AsyncIterator[LavalinkPyDriver]:
    bot, gateway = await start_bot(node, fake_discord)
    yield LavalinkPyDriver(bot, gateway, fake_discord, node)
    await bot.close()
    await bot.lavalink.close()


async def test_node_ready_and_rest(driver: LavalinkPyDriver) -> None:
    ready = driver.events.find(lambda e: e.kind == "ready")
    assert ready is not None and ready.raw.resumed is False
    assert ready.raw.session_id == driver.session_id()
    node = driver.lavalink_node
    assert (await node.get_version()).startswith("4.")
    info = await node.get_info()
    assert "http" in info["sourceManagers"], info
    stats = await node.get_stats()
    assert stats["players"] >= 0 and stats["uptime"] > 0, stats
    assert await node.get_routeplanner_status() is None  # no route planner configured: 204
    assert node.available
    # The node sends a `stats` op on connect; Lavalink.py balances players on it.
    for _ in range(100):
        if not node.stats.is_fake:
            break
        await asyncio.sleep(0.05)
    assert not node.stats.is_fake and node.stats.cpu_cores >= 1, "no stats op parsed"
    assert 0 <= node.penalty < 9e30


async def test_load_track_and_playlist(driver: LavalinkPyDriver, media: MediaServer) -> None:
    track = await scenarios.load(driver, media)
    decoded = await driver.bot.lavalink.decode_track(track.encoded)
    assert (decoded.title, decoded.identifier, decoded.duration) == (track.title, track.identifier, track.length_ms)
    missing = await driver.bot.lavalink.get_tracks(media.url("staircase/missing.mp3"))
    # A 404 from the media host is "no matches", as with Lavalink's http source.
    assert missing.load_type == lavalink.LoadType.EMPTY and not missing.tracks, missing


async def test_play_seek_and_events(driver: LavalinkPyDriver, media: MediaServer) -> None:
    track = await driver.load_track(media.url("staircase/staircase.mp3"))
    await scenarios.play_and_seek(driver, GUILD_PLAY, track)


async def test_filters_pause_volume_stop(driver: LavalinkPyDriver, media: MediaServer) -> None:
    # The playlist's second entry: a track from a playlist plays like any other.
    _, tracks = await driver.load_playlist(media.url("playlist.m3u"))
    flac = tracks[1]
    assert flac.uri == media.url("staircase/staircase.flac"), flac
    await scenarios.filters_pause_volume_stop(driver, GUILD_FILTERS, flac)


async def test_disconnect_destroys_the_player(driver: LavalinkPyDriver) -> None:
    await scenarios.disconnect(driver, GUILD_FILTERS, driver.gateway.sent)
    assert driver.bot.lavalink.player_manager.get(GUILD_FILTERS) is None


async def test_reconnect_after_the_connection_drops(driver: LavalinkPyDriver, node: AcousticNode, media: MediaServer) -> None:
    """Without resuming (Lavalink.py's default), a dropped node connection loses the node's
    session and its players; Lavalink.py reconnects at once and re-creates each player on the
    new session (DELETE, then a PATCH with the voice state, the track at the position it had
    reached, volume and filters). The node opens a new voice connection and the track goes on
    from where it was."""
    fake = driver.fake
    track = await driver.load_track(media.url("staircase/staircase.mp3"))
    await scenarios.join(driver, GUILD_RECONNECT)
    since = driver.events.mark()
    await driver.play(GUILD_RECONNECT, track)
    await driver.events.wait("start", GUILD_RECONNECT, since)
    await scenarios.wait_audio(driver, GUILD_RECONNECT, 0, 2.5)
    first = await fake.report(GUILD_RECONNECT, window_s=audio.WINDOW_S)
    fake_events = len(await fake.events())

    old_session = driver.session_id()
    ws = driver.lavalink_node._transport._ws  # the library's aiohttp WebSocket
    assert ws is not None
    mark = len(node.lines)
    ws.get_extra_info("socket").shutdown(socket.SHUT_WR)  # the connection is lost; the node notices
    await node.await_log(f"client disconnected session={old_session}", since=mark)
    ready = await driver.events.wait("ready", since=since, timeout=10)
    assert ready.raw.resumed is False and ready.raw.session_id != old_session, ready.raw

    # The re-created player streams on a new voice connection, from where the track was.
    for _ in range(200):
        streams = await fake.reports(GUILD_RECONNECT)
        if len(streams) == 2 and streams[1]["packets"] >= 50:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"no second voice stream after the reconnect: {streams}")
    closed = [e for e in (await fake.events())[fake_events:] if e["kind"] == "closed" and e.get("guild_id") == GUILD_RECONNECT]
    assert closed and closed[0]["by"] == "client", f"the old voice connection was not closed by the node: {closed}"
    # The old stream stopped within a few buffered frames of the drop.
    assert streams[0]["packets"] - first["packets"] <= 15, (first["packets"], streams[0]["packets"])
    state = await driver.player_state(GUILD_RECONNECT)
    assert state["position"] >= 2_000, state
    await driver.seek(GUILD_RECONNECT, 9_000)
    ended = await driver.events.wait("end", GUILD_RECONNECT, since, timeout=10)
    assert ended.reason == "finished", ended
    await scenarios.wait_trailing_silence(driver, GUILD_RECONNECT)

    second = await fake.report(GUILD_RECONNECT, window_s=audio.WINDOW_S)
    assert not audio.stream_problems(second), f"{audio.stream_problems(second)}: {audio.describe(second)}"
    # (the last window of the first snapshot may be cut short: leave it out)
    before = audio.runs(audio.windows(first, 0, audio.seconds_of(first) - audio.WINDOW_S), min_duration_s=0.1)
    after = audio.runs(audio.windows(second))
    print(f"reconnect: first stream {before}, second stream {after}")
    assert audio.steps(before) == [0, 1, 2], before
    # The new stream starts in the step the old one stopped in (or the next, across the
    # boundary), then the seek to 9 s.
    assert audio.steps(after)[0] in (2, 3) and audio.steps(after)[-1] == 9, after
    assert audio.steps(after) == sorted(audio.steps(after)), after


async def test_resume_after_a_bot_restart(driver: LavalinkPyDriver, node: AcousticNode, media: MediaServer) -> None:
    """Lavalink.py resumes a session when the bot passes the stored ``session_id`` to
    ``add_node``: the restarted bot gets ``resumed=True`` and the node's players are still
    playing. (Lavalink.py's in-process reconnect does not rely on resuming: it re-creates its
    players on the node instead.)"""
    fake = driver.fake
    first, first_gateway = await start_bot(node, fake)
    first_node = first.lavalink.node_manager.nodes[0]
    session = await first_node.update_session(resuming=True, timeout=60)
    assert session is not None and session["resuming"] is True and session["timeout"] == 60, session
    old_session_id = first_node.session_id

    track = (await first.lavalink.get_tracks(media.url("staircase/staircase.mp3"))).tracks[0]
    await first_gateway.voice_channel(GUILD_RESUME).connect(cls=LavalinkVoiceClient)
    await first_gateway.settle()
    assert await fake.wait_connected(GUILD_RESUME, 10)
    await first.lavalink.player_manager.get(GUILD_RESUME).play(track)
    await first.events.wait("start", GUILD_RESUME)
    await scenarios.wait_audio(driver, GUILD_RESUME, 0, 1.5)

    # The bot process goes away: its Lavalink connection closes, its voice state stays.
    voice_session = first_gateway.voice_session(GUILD_RESUME)
    mark = len(node.lines)
    await first.lavalink.close()
    await node.await_log(f"client disconnected session={old_session_id}", since=mark)

    second, second_gateway = await start_bot(
        node, fake, resume_session_id=old_session_id, in_voice={GUILD_RESUME: voice_session}
    )
    try:
        ready = second.events.find(lambda e: e.kind == "ready")
        assert ready is not None and ready.raw.resumed is True, ready
        assert ready.raw.session_id == old_session_id
        second_node = second.lavalink.node_manager.nodes[0]
        players = await second_node.get_players()
        resumed = [p for p in players if p["guildId"] == str(GUILD_RESUME)]
        assert resumed and resumed[0]["track"]["info"]["title"] == scenarios.TITLE, players
        assert resumed[0]["state"]["connected"] is True, resumed
        assert resumed[0]["state"]["position"] >= 1_500, resumed

        # The restarted bot takes the player over and controls it.
        player = second.lavalink.player_manager.create(GUILD_RESUME)
        player.current = lavalink.AudioTrack(resumed[0]["track"], 0)
        await player.seek(8_000)
        ended = await second.events.wait("end", GUILD_RESUME, timeout=10)
        assert ended.reason == "finished", ended
        await scenarios.wait_trailing_silence(driver, GUILD_RESUME)

        streams = await fake.reports(GUILD_RESUME)
        assert len(streams) == 1, f"the voice connection was re-made: {len(streams)} streams"
        report = await fake.report(GUILD_RESUME, window_s=audio.WINDOW_S)
        assert not audio.stream_problems(report), f"{audio.stream_problems(report)}: {audio.describe(report)}"
        heard = audio.steps(audio.runs(audio.windows(report)))
        # Steps 0, 1, ... without a restart or a gap, then 8 and 9 after the seek.
        assert heard[:2] == [0, 1] and heard[-2:] == [8, 9], heard
        assert heard == sorted(heard) and len(set(heard)) == len(heard), heard
    finally:
        await second.close()
        await second.lavalink.close()
        await first.close()
