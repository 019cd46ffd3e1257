"""Acoustic's warm yt-dlp resolver.

A long-lived helper process: it imports yt-dlp as a library once, then answers requests, one
JSON object per line on stdin, with one JSON object per line on stdout. Requests run on a pool
of threads, so several resolutions proceed at once; each thread keeps its own YoutubeDL object.

Requests
    {"id": N, "op": "extract", "url": U, "flat": bool, "playlist_end": int|null,
     "playlist_start": int|null, "complete": bool, "format": str|null,
     "source_address": str|null}             (the local address to send from, if not the default)
    {"id": N, "op": "cancel", "target": M}     drop request M if it has not started yet
    {"id": N, "op": "ping"}
Replies
    {"id": N, "ok": true, "info": {...}}       trimmed info dict (see trim())
    {"id": N, "ok": false, "error": {"type", "message", "expected", "http_status",
                                      "extractor", "countries"}}
    {"id": 0, "event": "ready", "version": ..., "python": ...}   once, at start

stdout carries only protocol lines: yt-dlp's own output goes to stderr.
The process exits when stdin closes.
"""

import argparse
import concurrent.futures
import json
import os
import re
import sys
import threading
import traceback

# Keys of an info dict (or playlist entry) that the node reads. Everything else is dropped so
# the lines stay small (a YouTube info dict with all formats is hundreds of kilobytes).
KEEP = (
    "_type", "id", "title", "fulltitle", "description", "uploader", "uploader_id", "channel",
    "channel_id", "creator", "artist", "artists", "track", "album", "album_artist", "duration",
    "is_live", "live_status", "was_live", "webpage_url", "original_url", "url", "extractor",
    "extractor_key", "ie_key", "thumbnail", "isrc", "availability", "direct",
    # the selected format (after format selection these are copied to the top level)
    "format_id", "ext", "acodec", "vcodec", "protocol", "http_headers", "filesize",
    "filesize_approx", "abr", "asr", "tbr", "container", "audio_channels", "cookies",
    "manifest_url",
    # data our hooks attach (see install_hooks())
    "acoustic",
)
MAX_THUMBNAILS = 40

PROTO = None
PROTO_LOCK = threading.Lock()
CANCELLED = set()
CANCEL_LOCK = threading.Lock()
LOCAL = threading.local()
ARGS = None


def send(obj):
    line = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str)
    with PROTO_LOCK:
        PROTO.write(line + "\n")
        PROTO.flush()


class StderrLogger:
    """yt-dlp logger: warnings and errors to stderr (the node logs them), debug dropped."""

    def debug(self, msg):
        pass

    def info(self, msg):
        pass

    def warning(self, msg):
        sys.stderr.write(msg + "\n")
        sys.stderr.flush()

    def error(self, msg):
        sys.stderr.write(msg + "\n")
        sys.stderr.flush()


def base_params():
    params = {
        "quiet": True,
        "no_warnings": False,
        "noprogress": True,
        "logger": StderrLogger(),
        "skip_download": True,
        "simulate": True,
        "noplaylist": False,
        "ignoreerrors": False,
        "socket_timeout": ARGS.socket_timeout,
        "extractor_retries": 1,
        "retries": 1,
        "cachedir": ARGS.cache_dir or False,
        "color": "no_color",
        "check_formats": False,
        "lazy_playlist": False,
    }
    if ARGS.proxy:
        params["proxy"] = ARGS.proxy
    if ARGS.source_address:
        params["source_address"] = ARGS.source_address
    return params


# YoutubeDL objects kept per thread for requests sent from other local addresses (the route
# planner's): a YoutubeDL binds its connections to one address when it is made.
MAX_ROUTED = 16


def ydl():
    """This thread's YoutubeDL object for the current request's source address (created on
    first use)."""
    address = getattr(LOCAL, "address", None)
    if address:
        routed = getattr(LOCAL, "routed", None)
        if routed is None:
            routed = LOCAL.routed = {}
        inst = routed.get(address)
        if inst is None:
            if len(routed) >= MAX_ROUTED:
                routed.clear()
            inst = routed[address] = make_ydl(dict(base_params(), source_address=address))
        return inst
    inst = getattr(LOCAL, "ydl", None)
    if inst is None:
        inst = LOCAL.ydl = make_ydl(base_params())
    return inst


def make_ydl(params):
    import yt_dlp

    inst = yt_dlp.YoutubeDL(params)
    search = BANDCAMP_SEARCH_IE()
    inst.add_info_extractor(search)
    # First in line: the generic extractor (last of the built-in ones) would claim it.
    key = search.ie_key()
    inst._ies = {key: inst._ies.pop(key), **inst._ies}
    return inst


def trim(info, depth=0):
    if not isinstance(info, dict):
        return None
    out = {k: info[k] for k in KEEP if k in info and info[k] is not None}
    thumbs = info.get("thumbnails")
    if isinstance(thumbs, list):
        out["thumbnails"] = [
            {k: t[k] for k in ("url", "id", "width", "height", "preference") if k in t}
            for t in thumbs[-MAX_THUMBNAILS:]
            if isinstance(t, dict) and t.get("url")
        ]
    entries = info.get("entries")
    if entries is not None and depth < 3:
        out["entries"] = [trim(e, depth + 1) for e in entries if isinstance(e, dict)]
    return out


def needs_completion(entry):
    if entry.get("_type", "video") not in ("url", "url_transparent"):
        return False
    if entry.get("is_live") or entry.get("live_status") == "is_live":
        return False
    return not entry.get("title") or entry.get("duration") is None


def complete_entry(entry, address):
    """Full extraction of a flat playlist entry that lacks its title or duration."""
    LOCAL.address = address
    inst = ydl()
    params = inst.params
    params["extract_flat"] = False
    params["format"] = "bestaudio/best"
    params["ignore_no_formats_error"] = True
    params.pop("playliststart", None)
    params.pop("playlistend", None)
    try:
        full = inst.extract_info(entry["url"], download=False, ie_key=entry.get("ie_key"))
    except Exception as e:  # an entry that cannot be resolved is left out, as Lavalink does
        sys.stderr.write(f"acoustic: dropped playlist entry {entry.get('url')}: {e}\n")
        return None
    return full


COMPLETION_POOL = None


def run_extract(req):
    LOCAL.address = req.get("source_address") or None
    inst = ydl()
    params = inst.params
    flat = bool(req.get("flat"))
    params["extract_flat"] = "in_playlist" if flat else False
    params["format"] = req.get("format") or "bestaudio/best"
    params["ignore_no_formats_error"] = not req.get("need_format", False)
    start = req.get("playlist_start")
    end = req.get("playlist_end")
    if start:
        params["playliststart"] = int(start)
    else:
        params.pop("playliststart", None)
    if end:
        params["playlistend"] = int(end)
    else:
        params.pop("playlistend", None)
    info = inst.extract_info(req["url"], download=False)
    info = inst.sanitize_info(info, remove_private_keys=False)
    out = trim(info)
    if req.get("complete") and isinstance(out, dict) and out.get("entries"):
        entries = out["entries"]
        todo = [i for i, e in enumerate(entries) if needs_completion(e)]
        if todo:
            address = LOCAL.address
            results = COMPLETION_POOL.map(lambda i: complete_entry(entries[i], address), todo)
            for i, full in zip(todo, list(results)):
                entries[i] = trim(inst.sanitize_info(full, remove_private_keys=False)) if full else None
            out["entries"] = [e for e in entries if e is not None]
    return out


def describe_error(exc):
    """The root cause of a yt-dlp failure, as plain data the node classifies."""
    import yt_dlp.utils as u

    # extract_info() raises DownloadError while handling the extractor's ExtractorError (which
    # carries the message, the `expected` flag and the network cause): find that one first.
    root = exc
    if isinstance(exc, u.DownloadError):
        ctx = exc.__context__
        for _ in range(8):
            if ctx is None or isinstance(ctx, u.ExtractorError):
                break
            ctx = ctx.__context__
        if isinstance(ctx, u.ExtractorError):
            root = ctx
        elif exc.exc_info and exc.exc_info[1] is not None:
            root = exc.exc_info[1]
    message = getattr(root, "orig_msg", None) or str(root)
    status = None
    cause = getattr(root, "cause", None)
    for candidate in (cause, root):
        s = getattr(candidate, "status", None)
        if isinstance(s, int):
            status = s
            break
    cause_text = None
    network = False
    if cause is not None:
        cause_text = f"{type(cause).__name__}: {cause}"
    try:
        from yt_dlp.networking.exceptions import HTTPError, TransportError

        network = isinstance(cause, TransportError) or isinstance(root, TransportError)
        if isinstance(cause, HTTPError) or isinstance(root, HTTPError):
            network = False
    except Exception:
        pass
    return {
        "type": type(root).__name__,
        "message": message,
        "expected": bool(getattr(root, "expected", False)),
        "http_status": status,
        "extractor": getattr(root, "ie", None),
        "countries": list(getattr(root, "countries", None) or []),
        "cause": cause_text,
        "network": network,
    }


def handle(req):
    rid = req.get("id")
    with CANCEL_LOCK:
        if rid in CANCELLED:
            CANCELLED.discard(rid)
            return
    try:
        op = req.get("op")
        if op == "extract":
            send({"id": rid, "ok": True, "info": run_extract(req)})
        elif op == "ping":
            send({"id": rid, "ok": True, "info": None})
        else:
            send({"id": rid, "ok": False, "error": {"type": "BadRequest", "message": f"unknown op {op!r}", "expected": False}})
    except BaseException as e:  # noqa: B036 - every failure is reported to the node
        try:
            err = describe_error(e)
        except Exception:
            err = {"type": type(e).__name__, "message": str(e), "expected": False}
        if not err.get("expected"):
            err["trace"] = "".join(traceback.format_exception(e))[-4000:]
        send({"id": rid, "ok": False, "error": err})


# ---------------------------------------------------------------------------------------------
# Hooks: data Lavalink's sources use that yt-dlp reads but does not return.


def install_hooks():
    try:
        from yt_dlp.extractor.soundcloud import SoundcloudBaseIE
    except Exception as e:
        sys.stderr.write(f"acoustic: SoundCloud hook not installed: {e}\n")
        return
    original = SoundcloudBaseIE._extract_info_dict

    def extract_info_dict(self, info, *args, **kwargs):
        result = original(self, info, *args, **kwargs)
        try:
            if isinstance(result, dict) and isinstance(info, dict):
                transcodings = []
                for t in ((info.get("media") or {}).get("transcodings") or []):
                    fmt = t.get("format") or {}
                    transcodings.append({
                        "protocol": fmt.get("protocol"),
                        "mime_type": fmt.get("mime_type"),
                        "url": t.get("url"),
                        "snipped": bool(t.get("snipped")),
                    })
                result["acoustic"] = {"soundcloud": {
                    "id": info.get("id"),
                    "title": info.get("title"),
                    "username": (info.get("user") or {}).get("username"),
                    "permalink_url": info.get("permalink_url"),
                    "artwork_url": info.get("artwork_url"),
                    "avatar_url": (info.get("user") or {}).get("avatar_url"),
                    "full_duration": info.get("full_duration"),
                    "duration": info.get("duration"),
                    "policy": info.get("policy"),
                    "isrc": (info.get("publisher_metadata") or {}).get("isrc"),
                    "transcodings": transcodings,
                }}
        except Exception as e:
            sys.stderr.write(f"acoustic: SoundCloud hook failed: {e}\n")
        return result

    SoundcloudBaseIE._extract_info_dict = extract_info_dict


def make_bandcamp_search_ie():
    """`bcsearch:` -- yt-dlp has no Bandcamp search, so this small extractor reads Bandcamp's
    search page (track results only, like Lavalink's Bandcamp source)."""
    import urllib.parse

    from yt_dlp.extractor.common import SearchInfoExtractor
    from yt_dlp.utils import clean_html, get_element_by_class, get_elements_html_by_class

    base = (ARGS.bandcamp_base or "https://bandcamp.com").rstrip("/")

    class BandcampSearchIE(SearchInfoExtractor):
        IE_NAME = "bandcamp:search"
        _SEARCH_KEY = "bcsearch"
        _MAX_RESULTS = 100

        def _search_results(self, query):
            for page in range(1, 11):
                url = f"{base}/search?" + urllib.parse.urlencode({"q": query, "item_type": "t", "page": page})
                webpage = self._download_webpage(url, query, note=f"Downloading search page {page}")
                found = 0
                for block in get_elements_html_by_class("searchresult", webpage):
                    itemtype = clean_html(get_element_by_class("itemtype", block) or "") or ""
                    if itemtype.strip().lower() != "track":
                        continue
                    heading = get_element_by_class("heading", block) or ""
                    title = clean_html(heading) or ""
                    subhead = clean_html(get_element_by_class("subhead", block) or "") or ""
                    artist = subhead.split("by")[-1].split(",")[0].strip() or None
                    itemurl = clean_html(get_element_by_class("itemurl", block) or "") or ""
                    track_url = itemurl.strip().split("?")[0]
                    if not track_url:
                        continue
                    art = re.search(r'<img[^>]+src="([^"]+)"', get_element_by_class("art", block) or "")
                    found += 1
                    yield {
                        "_type": "url",
                        "ie_key": "Bandcamp",
                        "url": track_url,
                        "webpage_url": track_url,
                        "id": track_url,
                        "title": title,
                        "uploader": artist,
                        "artist": artist,
                        "thumbnail": art.group(1) if art else None,
                        "acoustic": {"bandcamp_search": True},
                    }
                if not found:
                    return

    return BandcampSearchIE


BANDCAMP_SEARCH_IE = None


def warm_up(pool, workers):
    """Pay the first-use costs before answering: yt-dlp compiles the URL patterns of its ~1800
    extractors and loads the generic extractor's embed list on the first extraction, and each
    YoutubeDL object sets itself up on first use. A page served on loopback by this process
    makes one real generic extraction per worker thread (and so one YoutubeDL per thread)."""
    import http.server

    page = (b"<html><head><title>warm-up</title></head><body>"
            b"<audio src='/a.mp3'></audio></body></html>")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = page if self.path.startswith("/page") else b"ID3"
            ctype = "text/html" if self.path.startswith("/page") else "audio/mpeg"
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_HEAD = do_GET

        def log_message(self, *args):
            pass

    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    except OSError as e:
        sys.stderr.write(f"acoustic: warm-up skipped: {e}\n")
        return
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/page"
    barrier = threading.Barrier(workers)

    def one():
        import yt_dlp

        inst = ydl()
        try:
            barrier.wait(timeout=60)  # keeps this thread busy so each worker thread gets one
        except threading.BrokenBarrierError:
            pass
        # Through the thread's own object, unless a proxy or source address is set: loopback
        # must stay direct, so then a private object without them warms the shared parts.
        if ARGS.proxy or ARGS.source_address:
            inst = yt_dlp.YoutubeDL(dict(base_params(), proxy="", source_address=None))
        inst.params["extract_flat"] = False
        try:
            inst.extract_info(url, download=False)
        except Exception as e:
            sys.stderr.write(f"acoustic: warm-up extraction failed: {e}\n")

    for f in [pool.submit(one) for _ in range(workers)]:
        f.result()
    server.shutdown()
    server.server_close()


def main():
    global PROTO, ARGS, COMPLETION_POOL, BANDCAMP_SEARCH_IE
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--socket-timeout", type=float, default=10.0)
    parser.add_argument("--ytdlp-path", default=None)
    parser.add_argument("--proxy", default=None)
    parser.add_argument("--source-address", default=None)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--bandcamp-base", default=None)
    ARGS = parser.parse_args()

    # Protocol lines go to the original stdout; anything else that prints goes to stderr.
    PROTO = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    if ARGS.ytdlp_path:
        sys.path.insert(0, ARGS.ytdlp_path)
    try:
        import yt_dlp
        import yt_dlp.version
    except Exception as e:
        send({"id": 0, "event": "failed", "message": f"cannot import yt_dlp: {e}"})
        return 3

    install_hooks()
    BANDCAMP_SEARCH_IE = make_bandcamp_search_ie()

    workers = max(1, ARGS.workers)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="resolve")
    COMPLETION_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="complete")
    warm_up(pool, workers)
    send({
        "id": 0,
        "event": "ready",
        "version": yt_dlp.version.__version__,
        "python": sys.version.split()[0],
    })

    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
        except ValueError:
            sys.stderr.write(f"acoustic: bad request line: {line[:200]}\n")
            continue
        if req.get("op") == "cancel":
            with CANCEL_LOCK:
                CANCELLED.add(req.get("target"))
                if len(CANCELLED) > 10000:
                    CANCELLED.clear()
            continue
        pool.submit(handle, req)

    pool.shutdown(wait=False, cancel_futures=True)
    COMPLETION_POOL.shutdown(wait=False, cancel_futures=True)
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
