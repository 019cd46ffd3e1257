"""A log of what a library's own event API delivered to the bot, with waiting.

Each test bot registers listeners the way its library documents (Lavalink.py ``@listener``
hooks, wavelink's ``on_wavelink_*`` and mafic's ``on_track_*`` client events) and records
every event here as a :class:`Seen` entry.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Callable


@dataclass
class Seen:
    #: "start", "end", "ready", ... (what the test waits for)
    kind: str
    guild_id: int | None
    #: Title of the event's track, where the event carries one.
    title: str | None = None
    #: TrackEndEvent's reason, lower case as in the Lavalink protocol ("finished", "stopped"...).
    reason: str | None = None
    #: The library's own event object.
    raw: Any = None
    at: float = 0.0


class EventLog:
    def __init__(self) -> None:
        self.seen: list[Seen] = []

    def add(self, entry: Seen) -> None:
        entry.at = time.monotonic()
        self.seen.append(entry)

    def mark(self) -> int:
        """An index: :meth:`wait` with ``since=mark`` only looks at later events."""
        return len(self.seen)

    def find(self, pred: Callable[[Seen], bool], since: int = 0) -> Seen | None:
        return next((e for e in self.seen[since:] if pred(e)), None)

    async def wait(
        self,
        kind: str,
        guild_id: int | None = None,
        since: int = 0,
        timeout: float = 15.0,
        pred: Callable[[Seen], bool] = lambda _: True,
    ) -> Seen:
        def match(e: Seen) -> bool:
            return e.kind == kind and (guild_id is None or e.guild_id == guild_id) and pred(e)

        deadline = time.monotonic() + timeout
        while (found := self.find(match, since)) is None:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no {kind} event for guild {guild_id} within {timeout} s; saw {self.seen[since:]!r}"
                )
            await asyncio.sleep(0.02)
        return found
