"""A stand-in for the Discord *gateway* of a ``discord.py`` client.

The Lavalink client libraries never talk to Discord themselves: the bot's Discord library
sends "join this voice channel" (gateway op 4) and hands the library the
``VOICE_STATE_UPDATE`` / ``VOICE_SERVER_UPDATE`` dispatches Discord answers with (discord.py
calls ``VoiceProtocol.on_voice_state_update`` / ``on_voice_server_update``). Here the
``discord.Client`` is real; only its gateway connection (``client.ws``) is replaced by
:class:`FakeGateway`, which

* "logs in" the bot: feeds discord.py's own parsers a ``READY`` and one ``GUILD_CREATE`` per
  guild (a voice channel, the bot as a member, optionally the bot's voice state);
* answers op 4 like Discord: it registers a voice session at the fake voice server and
  dispatches ``VOICE_STATE_UPDATE`` (the session id, the channel) and then
  ``VOICE_SERVER_UPDATE`` (the token and the fake server's endpoint) through the same
  parsers, so everything downstream of the gateway is the library's real code path.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import discord

from .fake_discord import FakeDiscord

log = logging.getLogger(__name__)

BOT_USER_ID = 870_000_000_000_000_001
BOT_NAME = "acoustic-test-bot"


def channel_of(guild_id: int) -> int:
    """The voice channel the tests join in ``guild_id``."""
    return guild_id + 1_000


@dataclass
class FakeGateway:
    client: discord.Client
    fake: FakeDiscord
    user_id: int = BOT_USER_ID
    #: Every op 4 (Update Voice State) the library sent, as discord.py built it.
    sent: list[dict[str, Any]] = field(default_factory=list)
    #: Problems while answering an op 4 (the test fails on them).
    errors: list[BaseException] = field(default_factory=list)
    latency: float = 0.0
    shard_id: int | None = None
    _voice_sessions: dict[int, str] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _open: bool = True

    # -- what discord.py calls on its DiscordWebSocket ---------------------------------------

    @property
    def open(self) -> bool:
        return self._open

    def is_ratelimited(self) -> bool:
        return False

    async def close(self, code: int = 4000) -> None:
        self._open = False

    async def voice_state(
        self,
        guild_id: int,
        channel_id: int | None,
        self_mute: bool = False,
        self_deaf: bool = False,
    ) -> None:
        payload = {
            "op": 4,
            "d": {"guild_id": guild_id, "channel_id": channel_id, "self_mute": self_mute, "self_deaf": self_deaf},
        }
        self.sent.append(payload)
        task = asyncio.get_running_loop().create_task(self._answer(int(guild_id), channel_id, self_mute, self_deaf))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def change_presence(self, **_: Any) -> None:
        pass

    # -- Discord's side ------------------------------------------------------------------------

    def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Hands a dispatch to discord.py exactly where its gateway reader would."""
        log.debug("gateway dispatch %s %s", event, data)
        self.client._connection.parsers[event](data)

    async def _answer(self, guild_id: int, channel_id: int | None, self_mute: bool, self_deaf: bool) -> None:
        try:
            await asyncio.sleep(0.01)  # Discord answers over the network, after the op was sent
            if channel_id is None:
                session_id = self._voice_sessions.pop(guild_id, "")
                self.dispatch("VOICE_STATE_UPDATE", self.voice_state_payload(guild_id, None, session_id))
                return
            reg = await asyncio.to_thread(self.fake.register_session, guild_id, self.user_id, int(channel_id))
            self._voice_sessions[guild_id] = reg["session_id"]
            self.dispatch(
                "VOICE_STATE_UPDATE",
                self.voice_state_payload(guild_id, int(channel_id), reg["session_id"], self_mute, self_deaf),
            )
            await asyncio.sleep(0.01)
            self.dispatch(
                "VOICE_SERVER_UPDATE",
                {"token": reg["token"], "guild_id": str(guild_id), "endpoint": reg["endpoint"]},
            )
        except asyncio.CancelledError:
            raise  # the bot is shutting down (its loop or the module ends)
        except Exception as err:  # noqa: BLE001 - reported to the test
            log.exception("answering op 4 failed")
            self.errors.append(err)

    def voice_state_payload(
        self,
        guild_id: int,
        channel_id: int | None,
        session_id: str,
        self_mute: bool = False,
        self_deaf: bool = False,
        with_guild: bool = True,
    ) -> dict[str, Any]:
        data: dict[str, Any] = {
            "channel_id": None if channel_id is None else str(channel_id),
            "user_id": str(self.user_id),
            "session_id": session_id,
            "deaf": False,
            "mute": False,
            "self_deaf": self_deaf,
            "self_mute": self_mute,
            "self_video": False,
            "suppress": False,
            "request_to_speak_timestamp": None,
        }
        if with_guild:
            data["guild_id"] = str(guild_id)
            data["member"] = self._member()
        return data

    def _user(self) -> dict[str, Any]:
        return {
            "id": str(self.user_id),
            "username": BOT_NAME,
            "discriminator": "0",
            "global_name": None,
            "avatar": None,
            "bot": True,
            "flags": 0,
            "mfa_enabled": False,
            "verified": True,
        }

    def _member(self) -> dict[str, Any]:
        return {
            "user": self._user(),
            "roles": [],
            "joined_at": "2024-01-01T00:00:00.000000+00:00",
            "deaf": False,
            "mute": False,
            "flags": 0,
        }

    def _guild_create(self, guild_id: int, in_voice: dict[int, str]) -> dict[str, Any]:
        channel_id = channel_of(guild_id)
        voice_states = []
        if guild_id in in_voice:
            self._voice_sessions[guild_id] = in_voice[guild_id]
            voice_states.append(
                self.voice_state_payload(guild_id, channel_id, in_voice[guild_id], with_guild=False)
            )
        return {
            "id": str(guild_id),
            "name": f"guild {guild_id}",
            "icon": None,
            "owner_id": "1",
            "unavailable": False,
            "member_count": 1,
            "large": False,
            "features": [],
            "emojis": [],
            "stickers": [],
            "roles": [
                {
                    "id": str(guild_id),
                    "name": "@everyone",
                    "permissions": str(discord.Permissions.all().value),
                    "position": 0,
                    "color": 0,
                    "hoist": False,
                    "managed": False,
                    "mentionable": False,
                    "flags": 0,
                }
            ],
            "channels": [
                {
                    "id": str(channel_id),
                    "type": 2,
                    "name": "music",
                    "position": 0,
                    "permission_overwrites": [],
                    "bitrate": 64000,
                    "user_limit": 0,
                    "rtc_region": None,
                    "nsfw": False,
                    "parent_id": None,
                }
            ],
            "threads": [],
            "members": [self._member()],
            "voice_states": voice_states,
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "system_channel_flags": 0,
        }

    # -- the bot's life -------------------------------------------------------------------------

    async def login(self) -> None:
        """What ``Client.login`` does, minus Discord's HTTP API: asyncio set-up, the bot user,
        then the bot's own ``setup_hook`` (where wavelink bots connect their pool)."""
        client = self.client
        await client._async_setup_hook()
        client._connection.user = discord.ClientUser(state=client._connection, data=self._user())
        client.ws = self  # type: ignore[assignment]
        await client.setup_hook()

    async def connect(self, guild_ids: list[int], in_voice: dict[int, str] | None = None) -> None:
        """The gateway session: READY, then a GUILD_CREATE per guild; returns once discord.py
        dispatched ``ready``. ``in_voice`` maps guild → voice session id for guilds where the
        bot is already in the voice channel (as after a bot restart)."""
        self.dispatch(
            "READY",
            {
                "v": 10,
                "user": self._user(),
                "guilds": [{"id": str(g), "unavailable": True} for g in guild_ids],
                "session_id": "fake-gateway-session",
                "resume_gateway_url": "wss://gateway.invalid",
                "shard": [0, 1],
                "application": {"id": str(self.user_id), "flags": 0},
            },
        )
        for g in guild_ids:
            self.dispatch("GUILD_CREATE", self._guild_create(g, in_voice or {}))
        await asyncio.wait_for(self.client.wait_until_ready(), timeout=15)

    async def start(self, guild_ids: list[int], in_voice: dict[int, str] | None = None) -> None:
        await self.login()
        await self.connect(guild_ids, in_voice)

    def voice_channel(self, guild_id: int) -> discord.VoiceChannel:
        channel = self.client.get_channel(channel_of(guild_id))
        assert isinstance(channel, discord.VoiceChannel), channel
        return channel

    def voice_session(self, guild_id: int) -> str | None:
        """The voice session id Discord gave the bot in ``guild_id`` (None when not in voice)."""
        return self._voice_sessions.get(guild_id)

    async def settle(self) -> None:
        """Waits for pending op-4 answers and fails on any error in them."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self.errors:
            raise AssertionError(f"fake gateway failed answering op 4: {self.errors!r}")
