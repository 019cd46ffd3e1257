"""Test support for driving Acoustic with real Python Lavalink client libraries.

The pieces are independent processes and servers, as a bot sees them in production:

* :mod:`harness.node` starts the real ``acoustic`` binary on a free port;
* :mod:`harness.fake_discord` runs the ``fake-discord`` voice server binary and speaks its
  JSON-lines control protocol;
* :mod:`harness.media` serves the generated test media over HTTP (with Range support);
* :mod:`harness.gateway` stands in for the Discord *gateway* of a ``discord.py`` client, so
  the libraries receive VOICE_STATE_UPDATE / VOICE_SERVER_UPDATE exactly as from Discord;
* :mod:`harness.audio` reads the staircase test signal back from what reached the fake
  voice server.
"""
