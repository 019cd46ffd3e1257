"""Shared fixtures: one fake Discord voice server and one media server for the whole run, and
a fresh Acoustic node per test module (one module per client library), which at the end of
the module must have answered every request with success."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness import paths
from harness.fake_discord import FakeDiscord
from harness.media import MediaServer
from harness.node import AcousticNode


@pytest.fixture(scope="session")
def fake_discord(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeDiscord]:
    fake = FakeDiscord(tmp_path_factory.mktemp("fake-discord"))
    yield fake
    fake.close()


@pytest.fixture(scope="session")
def media() -> Iterator[MediaServer]:
    server = MediaServer(paths.media_dir())
    yield server
    server.close()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory, fake_discord: FakeDiscord) -> Iterator[AcousticNode]:
    n = AcousticNode(tmp_path_factory.mktemp("acoustic"), fake_discord.ca_file)
    yield n
    n.stop()
    # Every request the library made (and the harness's own checks) was answered with success:
    # a library that sends something the node rejects fails here even if it swallowed the error.
    requests = n.requests()
    assert requests, f"no request lines in the node's log ({n.log_path}); is acoustic::request at debug?"
    failed = [r for r in requests if r[3] >= 400]
    assert not failed, f"the node answered with errors: {failed}"
