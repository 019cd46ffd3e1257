// A static HTTP server over the generated test media (byte ranges included, as the node's http
// source seeks with Range requests).
"use strict";

const fs = require("node:fs");
const http = require("node:http");
const path = require("node:path");

const TYPES = {
    ".mp3": "audio/mpeg",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".wav": "audio/wav",
    ".m4a": "audio/mp4",
    ".webm": "audio/webm",
    ".m3u": "audio/x-mpegurl",
    ".pls": "audio/x-scpls",
};

class MediaServer {
    static async start(root) {
        const server = new MediaServer(root);
        await new Promise((resolve) => server.http.listen(0, "127.0.0.1", resolve));
        return server;
    }

    constructor(root) {
        this.root = path.resolve(root);
        this.http = http.createServer((req, res) => this.serve(req, res));
        this.http.keepAliveTimeout = 2000;
    }

    url(rel) {
        return `http://127.0.0.1:${this.http.address().port}/${rel}`;
    }

    serve(req, res) {
        const rel = decodeURIComponent(new URL(req.url, "http://x").pathname).replace(/^\/+/, "");
        const file = path.resolve(this.root, rel);
        if (!file.startsWith(this.root + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
            res.writeHead(404, { "Content-Type": "text/plain" });
            res.end("not found");
            return;
        }
        const size = fs.statSync(file).size;
        const headers = {
            "Content-Type": TYPES[path.extname(file)] || "application/octet-stream",
            "Accept-Ranges": "bytes",
        };
        let start = 0;
        let end = size - 1;
        let status = 200;
        const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range || "");
        if (range) {
            if (range[1] === "") {
                start = Math.max(0, size - Number(range[2]));
            } else {
                start = Number(range[1]);
                if (range[2] !== "") end = Math.min(end, Number(range[2]));
            }
            if (start >= size || start > end) {
                res.writeHead(416, { "Content-Range": `bytes */${size}` });
                res.end();
                return;
            }
            status = 206;
            headers["Content-Range"] = `bytes ${start}-${end}/${size}`;
        }
        headers["Content-Length"] = end - start + 1;
        res.writeHead(status, headers);
        if (req.method === "HEAD") {
            res.end();
            return;
        }
        const stream = fs.createReadStream(file, { start, end });
        stream.on("error", () => res.destroy());
        res.on("close", () => stream.destroy());
        stream.pipe(res);
    }

    stop() {
        this.http.closeAllConnections();
        return new Promise((resolve) => this.http.close(() => resolve()));
    }
}

module.exports = { MediaServer };
