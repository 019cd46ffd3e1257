"""The fake Discord voice server as a subprocess, driven by its JSON-lines control protocol.

Each request is one JSON object on stdin (``{"id", "cmd", ...}``), each reply one on stdout
(``{"id", "ok", "result"|"error"}``). Calls are serialised by a lock; the blocking ones
(``wait_*``) have ``async`` twins that run in a worker thread so the event loop of the bot
under test keeps running while we wait.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import queue
import subprocess
import threading
from pathlib import Path
from typing import Any

from . import paths


class FakeDiscordError(RuntimeError):
    """The fake server answered ``ok: false`` or went away."""


class FakeDiscord:
    def __init__(self, workdir: Path) -> None:
        self.ca_file = workdir / "fake-discord-ca.pem"
        self._log = open(workdir / "fake-discord.log", "w", encoding="utf-8")  # noqa: SIM115
        self._proc = subprocess.Popen(
            [str(paths.binary("fake-discord")), "--ca-file", str(self.ca_file)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name="fake-discord-stdout", daemon=True)
        self._reader.start()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        ready = self._next_line(20.0)
        if ready.get("event") != "ready":
            raise FakeDiscordError(f"unexpected first line from fake-discord: {ready}")
        self.endpoint: str = ready["endpoint"]
        self.udp_port: int = ready["udp_port"]

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _next_line(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise FakeDiscordError(f"fake-discord did not answer within {timeout} s") from None
        if line is None:
            raise FakeDiscordError(f"fake-discord exited (code {self._proc.poll()})")
        return json.loads(line)

    def call(self, cmd: str, timeout: float = 30.0, **args: Any) -> Any:
        """Runs one control command and returns its ``result``."""
        with self._lock:
            request_id = next(self._ids)
            assert self._proc.stdin is not None
            self._proc.stdin.write(json.dumps({"id": request_id, "cmd": cmd, **args}) + "\n")
            self._proc.stdin.flush()
            reply = self._next_line(timeout)
        if reply.get("id") != request_id:
            raise FakeDiscordError(f"reply {reply} does not answer request {request_id}")
        if not reply.get("ok"):
            raise FakeDiscordError(f"{cmd}: {reply.get('error')}")
        return reply["result"]

    async def acall(self, cmd: str, timeout: float = 30.0, **args: Any) -> Any:
        return await asyncio.to_thread(self.call, cmd, timeout, **args)

    # -- the commands the tests use ---------------------------------------------------------

    def register_session(self, guild_id: int, user_id: int, channel_id: int) -> dict[str, Any]:
        """Makes the server expect a bot in that guild; returns ``token``, ``session_id``,
        ``endpoint`` as Discord's VOICE_STATE_UPDATE / VOICE_SERVER_UPDATE would carry them."""
        return self.call("register_session", guild_id=guild_id, user_id=user_id, channel_id=channel_id)

    async def wait_connected(self, guild_id: int, timeout_s: float = 10.0) -> bool:
        return await self.acall(
            "wait_connected", timeout_s + 5, guild_id=guild_id, timeout_ms=int(timeout_s * 1000)
        )

    async def wait_dave_ready(self, guild_id: int, timeout_s: float = 10.0) -> bool:
        return await self.acall(
            "wait_dave_ready", timeout_s + 5, guild_id=guild_id, timeout_ms=int(timeout_s * 1000)
        )

    async def wait_packets(self, guild_id: int, count: int, timeout_s: float = 10.0) -> bool:
        return await self.acall(
            "wait_packets",
            timeout_s + 5,
            guild_id=guild_id,
            count=count,
            timeout_ms=int(timeout_s * 1000),
        )

    async def packets(self, guild_id: int) -> int:
        """Packets received so far on the guild's current stream (0 if none yet)."""
        try:
            report = await self.acall("report", guild_id=guild_id)
        except FakeDiscordError as err:
            if "no stream" in str(err):
                return 0
            raise
        return int(report["packets"])

    async def report(self, guild_id: int, window_s: float | None = None) -> dict[str, Any]:
        """The guild's current stream: counters, plus per-window ``analysis`` (start, frequency,
        RMS level) of the decoded audio when ``window_s`` is given."""
        args: dict[str, Any] = {"guild_id": guild_id}
        if window_s is not None:
            args["window_s"] = window_s
        return await self.acall("report", **args)

    async def reports(self, guild_id: int) -> list[dict[str, Any]]:
        """Every stream the guild had (one per voice Identify), oldest first."""
        return await self.acall("reports", guild_id=guild_id)

    async def events(self, since: int = 0) -> list[dict[str, Any]]:
        return await self.acall("events", since=since)

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self.call("shutdown", timeout=5.0)
            except (FakeDiscordError, OSError, ValueError):
                pass
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()
