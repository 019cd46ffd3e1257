"""wavelink 3.x drives Acoustic as it drives Lavalink.

The bot is a ``discord.py`` client set up as wavelink's documentation shows: the pool is
connected in ``setup_hook`` with one ``wavelink.Node`` (the only line that names the node),
players join with ``channel.connect(cls=wavelink.Player)``, and the events arrive as
``on_wavelink_*`` client events.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import discord
import pytest_asyncio
import wavelink

from harness import audio, scenarios
from harness.events import EventLog, Seen
from harness.fake_discord import FakeDiscord
from harness.gateway import FakeGateway
from harness.media import MediaServer
from harness.node import AcousticNode
from harness.scenarios import TrackInfo

GUILD_PLAY = 201
GUILD_FILTERS = 202
GUILD_RESUME = 203
GUILDS = [GUILD_PLAY, GUILD_FILTERS, GUILD_RESUME]


class MusicBot(discord.Client):
    def __init__(self, node: AcousticNode, events: EventLog) -> None:
        super().__init__(intents=discord.Intents.default(), guild_ready_timeout=0.1)
        self.node_config = node
        self.events = events

    async def setup_hook(self) -> None:
        # The one line that differs from a bot using Lavalink: the node's address and password.
        nodes = [wavelink.Node(uri=self.node_config.uri, password=self.node_config.password)]
        await wavelink.Pool.connect(nodes=nodes, client=self)

    async def on_wavelink_node_ready(self, payload: wavelink.NodeReadyEventPayload) -> None:
        self.events.add(Seen("ready", None, raw=payload))

    async def on_wavelink_stats_update(self, payload: wavelink.StatsEventPayload) -> None:
        self.events.add(Seen("stats", None, raw=payload))

    async def on_wavelink_track_start(self, payload: wavelink.TrackStartEventPayload) -> None:
        guild = payload.player.guild.id if payload.player and payload.player.guild else None
        self.events.add(Seen("start", guild, payload.track.title, raw=payload))

    async def on_wavelink_track_end(self, payload: wavelink.TrackEndEventPayload) -> None:
        guild = payload.player.guild.id if payload.player and payload.player.guild else None
        self.events.add(Seen("end", guild, payload.track.title, payload.reason, raw=payload))


def track_info(t: wavelink.Playable) -> TrackInfo:
    return TrackInfo(t, t.title, t.author, t.length, t.uri, t.identifier, t.is_seekable, t.encoded)


class WavelinkDriver:
    def __init__(self, bot: MusicBot, gateway: FakeGateway, fake: FakeDiscord, node: AcousticNode) -> None:
        self.bot, self.gateway, self.fake, self.node = bot, gateway, fake, node
        self.events = bot.events

    @property
    def wavelink_node(self) -> wavelink.Node:
        return wavelink.Pool.get_node()

    def player(self, guild_id: int) -> wavelink.Player:
        guild = self.bot.get_guild(guild_id)
        assert guild is not None and isinstance(guild.voice_client, wavelink.Player), guild
        return guild.voice_client

    def session_id(self) -> str:
        sid = self.wavelink_node.session_id
        assert sid
        return sid

    async def load_track(self, url: str) -> TrackInfo:
        result = await wavelink.Playable.search(url)
        assert isinstance(result, list) and len(result) == 1, result
        return track_info(result[0])

    async def load_playlist(self, url: str) -> tuple[str, list[TrackInfo]]:
        result = await wavelink.Playable.search(url)
        assert isinstance(result, wavelink.Playlist), result
        return result.name, [track_info(t) for t in result.tracks]

    async def join(self, guild_id: int) -> None:
        await self.gateway.voice_channel(guild_id).connect(cls=wavelink.Player)
        await self.gateway.settle()

    async def play(self, guild_id: int, track: TrackInfo) -> None:
        await self.player(guild_id).play(track.handle)

    async def seek(self, guild_id: int, position_ms: int) -> None:
        await self.player(guild_id).seek(position_ms)

    async def pause(self, guild_id: int, paused: bool) -> None:
        await self.player(guild_id).pause(paused)

    async def set_volume(self, guild_id: int, volume: int) -> None:
        await self.player(guild_id).set_volume(volume)

    async def set_equalizer(self, guild_id: int, bands: list[tuple[int, float]]) -> None:
        player = self.player(guild_id)
        filters = player.filters
        filters.equalizer.set(bands=[{"band": b, "gain": g} for b, g in bands])
        await player.set_filters(filters)

    async def set_timescale(self, guild_id: int, pitch: float) -> None:
        filters = wavelink.Filters()
        filters.timescale.set(pitch=pitch)
        await self.player(guild_id).set_filters(filters)

    async def stop(self, guild_id: int) -> None:
        await self.player(guild_id).stop()

    async def disconnect(self, guild_id: int) -> None:
        await self.player(guild_id).disconnect()
        await self.gateway.settle()

    async def player_state(self, guild_id: int) -> dict:
        info = await self.wavelink_node.fetch_player_info(guild_id)
        assert info is not None
        return {
            "position": info.state.position,
            "paused": info.paused,
            "volume": info.volume,
            "filters": info.filters(),
        }


@pytest_asyncio.fixture(scope="module")
async def driver(node: AcousticNode, fake_discord: FakeDiscord) -> AsyncIterator[WavelinkDriver]:
    events = EventLog()
    bot = MusicBot(node, events)
    gateway = FakeGateway(bot, fake_discord)
    await gateway.start(GUILDS)
    await events.wait("ready", timeout=10)
    yield WavelinkDriver(bot, gateway, fake_discord, node)
    await bot.close()
    await wavelink.Pool.close()


async def test_node_ready_and_rest(driver: WavelinkDriver) -> None:
    ready = driver.events.find(lambda e: e.kind == "ready")
    assert ready is not None and ready.raw.resumed is False
    node = driver.wavelink_node
    assert node.status is wavelink.NodeStatus.CONNECTED
    assert ready.raw.session_id == node.session_id
    assert (await node.fetch_version()).startswith("4.")
    info = await node.fetch_info()
    assert "http" in info.source_managers, info
    stats = await node.fetch_stats()
    assert stats.uptime > 0, stats
    assert await node.fetch_players() == []
    stats_op = await driver.events.wait("stats", timeout=5)
    assert stats_op.raw.cpu.cores >= 1 and stats_op.raw.players >= 0, stats_op


async def test_load_track_and_playlist(driver: WavelinkDriver, media: MediaServer) -> None:
    await scenarios.load(driver, media)
    missing = await wavelink.Playable.search(media.url("staircase/missing.mp3"))
    assert missing == [], missing


async def test_play_seek_and_events(driver: WavelinkDriver, media: MediaServer) -> None:
    track = await driver.load_track(media.url("staircase/staircase.mp3"))
    await scenarios.play_and_seek(driver, GUILD_PLAY, track)


async def test_filters_pause_volume_stop(driver: WavelinkDriver, media: MediaServer) -> None:
    # The playlist's second entry: a track from a playlist plays like any other.
    _, tracks = await driver.load_playlist(media.url("playlist.m3u"))
    flac = tracks[1]
    assert flac.uri == media.url("staircase/staircase.flac"), flac
    await scenarios.filters_pause_volume_stop(driver, GUILD_FILTERS, flac)


async def test_disconnect_destroys_the_player(driver: WavelinkDriver) -> None:
    await scenarios.disconnect(driver, GUILD_FILTERS, driver.gateway.sent)
    assert driver.bot.get_guild(GUILD_FILTERS).voice_client is None  # type: ignore[union-attr]


async def test_resume_after_the_connection_drops(driver: WavelinkDriver, media: MediaServer) -> None:
    """wavelink configures resuming (60 s) when its node is ready and reconnects with its
    ``Session-Id`` when the WebSocket drops: the session and its player carry on."""
    node = driver.wavelink_node
    session_id = node.session_id
    track = await driver.load_track(media.url("staircase/staircase.mp3"))
    await scenarios.join(driver, GUILD_RESUME)
    since = driver.events.mark()
    await driver.play(GUILD_RESUME, track)
    await driver.events.wait("start", GUILD_RESUME, since)
    await scenarios.wait_audio(driver, GUILD_RESUME, 0, 1.5)

    # The connection is lost (no close frame either way), and the node notices first: the
    # bot's side stops sending (FIN), the node pauses the session and drops the socket, and
    # wavelink sees it go. (If the client reconnected before the node had noticed the loss,
    # the session would still be attached to the dead socket and the node, like Lavalink,
    # would open a new session instead: see README-python.md.)
    ws = node._websocket.socket  # the library's aiohttp WebSocket
    assert ws is not None
    mark = len(driver.node.lines)
    ws.get_extra_info("socket").shutdown(socket.SHUT_WR)
    await driver.node.await_log(f"client disconnected session={session_id}", since=mark)

    ready = await driver.events.wait("ready", since=since, timeout=15)
    assert ready.raw.resumed is True, ready
    assert ready.raw.session_id == session_id
    assert node.session_id == session_id

    # The same player object still controls the node's player, and events still arrive.
    state = await driver.player_state(GUILD_RESUME)
    assert state["position"] >= 1_500, state
    await driver.seek(GUILD_RESUME, 8_000)
    ended = await driver.events.wait("end", GUILD_RESUME, since, timeout=10)
    assert ended.reason == "finished", ended
    await scenarios.wait_trailing_silence(driver, GUILD_RESUME)

    streams = await driver.fake.reports(GUILD_RESUME)
    assert len(streams) == 1, f"the voice connection was re-made: {len(streams)} streams"
    report = await driver.fake.report(GUILD_RESUME, window_s=audio.WINDOW_S)
    assert not audio.stream_problems(report), f"{audio.stream_problems(report)}: {audio.describe(report)}"
    heard = audio.steps(audio.runs(audio.windows(report)))
    assert heard[:2] == [0, 1] and heard[-2:] == [8, 9], heard
    assert heard == sorted(heard) and len(set(heard)) == len(heard), heard
