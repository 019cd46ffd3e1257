"""Starts the real ``acoustic`` binary on a free port with a temporary ``application.yml``.

The node trusts the fake Discord server's certificate authority through ``SSL_CERT_FILE``,
exactly as an operator would point it at a private CA.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from . import paths

PASSWORD = "youshallnotpass"
_LISTENING = re.compile(r"listening on (\S+):(\d+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: The node's debug line for each HTTP request it answered.
_REQUEST = re.compile(r'acoustic::request: request method=(\S+) path="([^"]*)" query="([^"]*)".* status=(\d+)')


class AcousticNode:
    def __init__(self, workdir: Path, ca_file: Path, extra_server_yaml: str = "") -> None:
        self.workdir = workdir
        self.password = PASSWORD
        config = workdir / "application.yml"
        config.write_text(
            "server:\n"
            "  port: 0\n"
            "  address: 127.0.0.1\n"
            "lavalink:\n"
            "  server:\n"
            f'    password: "{PASSWORD}"\n'
            f"{extra_server_yaml}",
            encoding="utf-8",
        )
        env = dict(os.environ)
        env["SSL_CERT_FILE"] = str(ca_file)
        # Not the caller's RUST_LOG: the harness reads the node's "listening on", "client
        # disconnected" and per-request lines (ACOUSTIC_LOG replaces the filter, as in the JS suite).
        env["RUST_LOG"] = os.environ.get("ACOUSTIC_LOG", "info,acoustic=debug")
        self.log_path = workdir / "acoustic.log"
        self._log = open(self.log_path, "w", encoding="utf-8")  # noqa: SIM115
        self._proc = subprocess.Popen(
            [str(paths.binary("acoustic")), "--config", str(config)],
            cwd=workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._address = threading.Event()
        #: The node's log, one entry per line, without colours.
        self.lines: list[str] = []
        self._lines_changed = threading.Condition()
        self.host = "127.0.0.1"
        self.port = 0
        self._pump_thread = threading.Thread(target=self._pump, name="acoustic-log", daemon=True)
        self._pump_thread.start()
        if not self._address.wait(30):
            self.stop()
            raise RuntimeError(f"acoustic did not start; see {self.log_path}")
        if not self.port:
            raise RuntimeError(f"acoustic exited at start; see {self.log_path}")

    def _pump(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._log.write(line)
            self._log.flush()
            with self._lines_changed:
                self.lines.append(_ANSI.sub("", line.rstrip("\n")))
                self._lines_changed.notify_all()
            if not self._address.is_set() and (m := _LISTENING.search(line)):
                self.host, self.port = m.group(1), int(m.group(2))
                self._address.set()
        self._address.set()

    @property
    def uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    def rest(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """A plain REST call, for checking the node's state independently of the library."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.uri + path, data=data, method=method)
        request.add_header("Authorization", self.password)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as err:
            status, text = err.code, err.read().decode()
        try:
            return status, json.loads(text) if text else None
        except json.JSONDecodeError:
            return status, text

    def wait_log(self, pattern: str, since: int = 0, timeout: float = 10.0) -> str:
        """Waits for a log line (from index ``since`` on) matching the regular expression
        ``pattern`` and returns it; ``len(node.lines)`` taken beforehand is a mark."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._lines_changed:
            while True:
                found = next((line for line in self.lines[since:] if regex.search(line)), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no log line matching {pattern!r} within {timeout} s; see {self.log_path}")
                self._lines_changed.wait(left)

    async def await_log(self, pattern: str, since: int = 0, timeout: float = 10.0) -> str:
        """:meth:`wait_log` without blocking the event loop."""
        return await asyncio.to_thread(self.wait_log, pattern, since, timeout)

    def requests(self) -> list[tuple[str, str, str, int]]:
        """Every HTTP request the node answered so far: (method, path, query, status)."""
        out = []
        for line in list(self.lines):
            if m := _REQUEST.search(line):
                out.append((m.group(1), m.group(2), m.group(3), int(m.group(4))))
        return out

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._pump_thread.join(timeout=2)  # the last lines reach the log file
        self._log.close()
