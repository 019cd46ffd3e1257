// A recording proxy in front of one node. Clients talk to the proxy exactly as they would to the
// node; the proxy forwards every byte and keeps a copy of what the node answered:
//   - REST: method, path, status, content type and body of every response;
//   - WebSocket: the upgrade response (status, Session-Resumed, Lavalink-Api-Version) and every
//     text message the node sent, reassembled from the raw frames.
// It can also cut client connections (as a network failure would) and refuse new ones for a
// while, which is how the tests make the libraries reconnect and resume.
"use strict";

const http = require("node:http");
const net = require("node:net");

class RecordingProxy {
    /**
     * @param {string} name  label of the node behind it (kept in every record)
     * @param {string} host  node address
     * @param {number} port
     * @param {Array} records  shared list the records are appended to
     */
    static async start(name, host, port, records) {
        const proxy = new RecordingProxy(name, host, port, records);
        await new Promise((resolve) => proxy.server.listen(0, "127.0.0.1", resolve));
        return proxy;
    }

    constructor(name, host, port, records) {
        this.name = name;
        this.upstreamHost = host;
        this.upstreamPort = port;
        this.records = records;
        this.refuseUntil = 0;
        this.holdUntil = 0;
        this.sockets = new Set();
        this.nextConn = 1;
        this.agent = new http.Agent({ keepAlive: true });
        this.server = http.createServer((req, res) => this.onRequest(req, res));
        this.server.on("upgrade", (req, socket, head) => this.onUpgrade(req, socket, head));
    }

    get port() {
        return this.server.address().port;
    }

    get host() {
        return "127.0.0.1";
    }

    onRequest(req, res) {
        const chunks = [];
        req.on("data", (c) => chunks.push(c));
        req.on("end", () => {
            const body = Buffer.concat(chunks);
            const headers = { ...req.headers, host: `${this.upstreamHost}:${this.upstreamPort}` };
            const up = http.request(
                { host: this.upstreamHost, port: this.upstreamPort, method: req.method, path: req.url, headers, agent: this.agent },
                (upRes) => {
                    const parts = [];
                    upRes.on("data", (c) => parts.push(c));
                    upRes.on("end", () => {
                        const data = Buffer.concat(parts);
                        const url = new URL(req.url, "http://x");
                        this.records.push({
                            kind: "rest",
                            node: this.name,
                            at: Date.now(),
                            method: req.method,
                            path: url.pathname,
                            query: url.search,
                            requestBody: body.length ? body.toString("utf8") : null,
                            status: upRes.statusCode,
                            contentType: upRes.headers["content-type"] || null,
                            apiVersion: upRes.headers["lavalink-api-version"] || null,
                            body: data.toString("utf8"),
                        });
                        const out = { ...upRes.headers };
                        delete out["transfer-encoding"];
                        delete out.connection;
                        out["content-length"] = data.length;
                        res.writeHead(upRes.statusCode, out);
                        res.end(data);
                    });
                    upRes.on("error", () => res.destroy());
                },
            );
            up.on("error", (err) => {
                // The node is gone (or refused): a gateway error, not a node response.
                if (!res.headersSent) {
                    res.writeHead(502, { "Content-Type": "text/plain" });
                    res.end(`proxy: ${err.message}`);
                } else {
                    res.destroy();
                }
            });
            up.end(body);
        });
    }

    onUpgrade(req, socket, head) {
        const hold = this.holdUntil - Date.now();
        if (hold > 0) {
            socket.pause();
            setTimeout(() => this.onUpgrade(req, socket, head), hold);
            return;
        }
        if (Date.now() < this.refuseUntil) {
            socket.end("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            return;
        }
        const conn = this.nextConn++;
        socket.pause();
        const upstream = net.connect(this.upstreamPort, this.upstreamHost);
        let connected = false;
        const pair = { socket, upstream };
        this.sockets.add(pair);
        const done = () => {
            this.sockets.delete(pair);
            socket.destroy();
            upstream.destroy();
        };
        upstream.once("connect", () => {
            connected = true;
            const lines = [`${req.method} ${req.url} HTTP/1.1`];
            for (let i = 0; i < req.rawHeaders.length; i += 2) {
                // No compression: the frames must be readable here.
                if (/^sec-websocket-extensions$/i.test(req.rawHeaders[i])) continue;
                lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
            }
            upstream.write(`${lines.join("\r\n")}\r\n\r\n`);
            if (head && head.length) upstream.write(head);
            socket.pipe(upstream);
            socket.resume();
        });
        const reader = new ServerStreamReader((event) => {
            this.records.push({ ...event, node: this.name, conn, at: Date.now() });
        }, req);
        upstream.on("data", (data) => {
            socket.write(data);
            reader.push(data);
        });
        upstream.on("error", () => {
            if (!connected) {
                socket.end("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                this.sockets.delete(pair);
            }
        });
        upstream.on("close", () => (connected ? done() : undefined));
        socket.on("error", done);
        socket.on("close", done);
    }

    /**
     * Cuts every client WebSocket (no close frame, as a network failure). For `refuseMs` new
     * upgrades are refused (503); for `holdMs` they are held unanswered and then let through,
     * as over a network that is slow to come back.
     */
    dropClients({ refuseMs = 0, holdMs = 0 } = {}) {
        this.refuseUntil = Date.now() + refuseMs;
        this.holdUntil = Date.now() + holdMs;
        for (const { socket, upstream } of [...this.sockets]) {
            socket.destroy();
            upstream.destroy();
        }
    }

    stop() {
        this.dropClients();
        this.agent.destroy();
        this.server.closeAllConnections();
        return new Promise((resolve) => this.server.close(() => resolve()));
    }
}

/** Reads the server side of a WebSocket connection: the HTTP response head, then frames. */
class ServerStreamReader {
    constructor(emit, req) {
        this.emit = emit;
        this.req = req;
        this.buf = Buffer.alloc(0);
        this.head = true;
        this.fragments = null;
    }

    push(data) {
        this.buf = Buffer.concat([this.buf, data]);
        if (this.head) {
            const end = this.buf.indexOf("\r\n\r\n");
            if (end < 0) return;
            const lines = this.buf.subarray(0, end).toString("latin1").split("\r\n");
            this.buf = this.buf.subarray(end + 4);
            this.head = false;
            const status = Number(lines[0].split(" ")[1]);
            const headers = {};
            for (const line of lines.slice(1)) {
                const i = line.indexOf(":");
                headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
            }
            this.emit({
                kind: "ws-open",
                status,
                sessionResumed: headers["session-resumed"] ?? null,
                apiVersion: headers["lavalink-api-version"] ?? null,
                requestSessionId: this.req.headers["session-id"] ?? null,
            });
        }
        this.frames();
    }

    frames() {
        for (;;) {
            const b = this.buf;
            if (b.length < 2) return;
            const fin = (b[0] & 0x80) !== 0;
            const opcode = b[0] & 0x0f;
            const masked = (b[1] & 0x80) !== 0;
            let len = b[1] & 0x7f;
            let off = 2;
            if (len === 126) {
                if (b.length < 4) return;
                len = b.readUInt16BE(2);
                off = 4;
            } else if (len === 127) {
                if (b.length < 10) return;
                len = Number(b.readBigUInt64BE(2));
                off = 10;
            }
            let mask = null;
            if (masked) {
                if (b.length < off + 4) return;
                mask = b.subarray(off, off + 4);
                off += 4;
            }
            if (b.length < off + len) return;
            const payload = Buffer.from(b.subarray(off, off + len));
            if (mask) for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i % 4];
            this.buf = b.subarray(off + len);
            this.frame(fin, opcode, payload);
        }
    }

    frame(fin, opcode, payload) {
        if (opcode === 0x1 || opcode === 0x2) {
            this.fragments = { opcode, parts: [payload] };
        } else if (opcode === 0x0 && this.fragments) {
            this.fragments.parts.push(payload);
        } else if (opcode === 0x8) {
            this.emit({
                kind: "ws-close",
                code: payload.length >= 2 ? payload.readUInt16BE(0) : null,
                reason: payload.subarray(2).toString("utf8"),
            });
            return;
        } else {
            return; // ping / pong
        }
        if (!fin) return;
        const data = Buffer.concat(this.fragments.parts);
        const binary = this.fragments.opcode === 0x2;
        this.fragments = null;
        this.emit({ kind: "ws", binary, text: data.toString("utf8") });
    }
}

module.exports = { RecordingProxy };
