"""Serves the generated test media over HTTP/1.1 on loopback, with single ``Range`` requests
(206 / 416), ``Content-Length`` and a content type per extension, as a media host would."""

from __future__ import annotations

import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

CONTENT_TYPES = {
    ".mp3": "audio/mpeg",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg; codecs=opus",
    ".m4a": "audio/mp4",
    ".wav": "audio/wav",
    ".webm": "audio/webm",
    ".m3u": "audio/x-mpegurl",
    ".pls": "audio/x-scpls",
}
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class MediaServer:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.requests: list[tuple[str, str | None, int]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

            def do_HEAD(self) -> None:  # noqa: N802
                self._serve(body=False)

            def do_GET(self) -> None:  # noqa: N802
                self._serve(body=True)

            def _serve(self, body: bool) -> None:
                rel = unquote(urlsplit(self.path).path).lstrip("/")
                file = (server.root / rel).resolve()
                range_header = self.headers.get("Range")
                if server.root not in file.parents or not file.is_file():
                    self._status_only(HTTPStatus.NOT_FOUND, range_header)
                    return
                data = file.read_bytes()
                size = len(data)
                start, end, status = 0, size - 1, HTTPStatus.OK
                if range_header:
                    m = _RANGE.match(range_header.strip())
                    if m is None or (not m.group(1) and not m.group(2)):
                        self._status_only(HTTPStatus.RANGE_NOT_SATISFIABLE, range_header, size)
                        return
                    if m.group(1):
                        start = int(m.group(1))
                        end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
                    else:  # suffix range: the last N bytes
                        start = max(size - int(m.group(2)), 0)
                    if start >= size or start > end:
                        self._status_only(HTTPStatus.RANGE_NOT_SATISFIABLE, range_header, size)
                        return
                    status = HTTPStatus.PARTIAL_CONTENT
                server.requests.append((rel, range_header, int(status)))
                self.send_response(status)
                self.send_header("Content-Type", CONTENT_TYPES.get(file.suffix, "application/octet-stream"))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(end - start + 1))
                if status == HTTPStatus.PARTIAL_CONTENT:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                self.end_headers()
                if body:
                    try:
                        self.wfile.write(data[start : end + 1])
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the node closed early (it read what it needed)

            def _status_only(self, status: HTTPStatus, range_header: str | None, size: int | None = None) -> None:
                server.requests.append((self.path, range_header, int(status)))
                self.send_response(status)
                if size is not None:
                    self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="media", daemon=True)
        self._thread.start()

    def url(self, rel: str) -> str:
        return f"http://127.0.0.1:{self.port}/{rel}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
