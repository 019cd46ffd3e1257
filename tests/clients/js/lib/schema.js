// Validates what the recording proxies saw against the npm `lavalink-protocol` schemas (effect
// Schema definitions of every Lavalink v4 REST result and WebSocket message).
//
// A violation is a response or message that does not decode with the schema for its route or
// op (wrong type, missing field, unknown enum value), a non-2xx response whose body is not
// Lavalink's error object, a REST response without `Lavalink-Api-Version: 4`, or a WebSocket
// connection whose first message is not `ready`. Fields the schema does not know are not
// violations (the schemas ignore them, as clients do); they are listed as notes.
"use strict";

const P = require("lavalink-protocol");
const { Schema, ParseResult, Either } = require("effect");

// Known errata of lavalink-protocol 1.2.1 against the Lavalink server it describes:
// - `GET /v4/stats`: the schema requires the `frameStats` key (null allowed); Lavalink's own
//   protocol module gives `frameStats` a null default that its encoder omits, and documents it
//   as absent from /v4/stats. The REST stats are checked with `frameStats` optional.
const REST_STATS = Schema.Struct({ ...P.stats.fields, frameStats: Schema.optional(Schema.NullOr(P.frameStats)) });

const PLAYER = /^\/v4\/sessions\/[^/]+\/players\/[^/]+$/;
const ROUTES = [
    { label: "/version", method: "GET", path: /^\/version$/, schema: "text" },
    { label: "/v4/info", method: "GET", path: /^\/v4\/info$/, schema: P.RESTGetAPINodeInfoResult, name: "RESTGetAPINodeInfoResult" },
    { label: "/v4/stats", method: "GET", path: /^\/v4\/stats$/, schema: REST_STATS, name: "RESTGetAPINodeStatsResult (frameStats optional)", original: P.RESTGetAPINodeStatsResult },
    { label: "/v4/loadtracks", method: "GET", path: /^\/v4\/loadtracks$/, schema: P.RESTGetAPILoadTracksResult, name: "RESTGetAPILoadTracksResult" },
    { label: "/v4/decodetrack", method: "GET", path: /^\/v4\/decodetrack$/, schema: P.RESTGetAPIDecodeTrackResult, name: "RESTGetAPIDecodeTrackResult" },
    { label: "/v4/decodetracks", method: "POST", path: /^\/v4\/decodetracks$/, schema: P.RESTPostAPIDecodeTracksResult, name: "RESTPostAPIDecodeTracksResult" },
    { label: "/v4/sessions/{id}/players", method: "GET", path: /^\/v4\/sessions\/[^/]+\/players$/, schema: P.RESTGetAPIPlayersResult, name: "RESTGetAPIPlayersResult" },
    { label: "/v4/sessions/{id}/players/{guild}", method: "GET", path: PLAYER, schema: P.RESTGetAPIPlayerResult, name: "RESTGetAPIPlayerResult" },
    { label: "/v4/sessions/{id}/players/{guild}", method: "PATCH", path: PLAYER, schema: P.RESTPatchAPIPlayerResult, name: "RESTPatchAPIPlayerResult", request: P.RESTPatchAPIPlayerJSONBody, requestName: "RESTPatchAPIPlayerJSONBody" },
    { label: "/v4/sessions/{id}/players/{guild}", method: "DELETE", path: PLAYER, schema: "empty" },
    { label: "/v4/sessions/{id}", method: "PATCH", path: /^\/v4\/sessions\/[^/]+$/, schema: P.RESTPatchAPISessionResult, name: "RESTPatchAPISessionResult", request: P.RESTPatchAPISessionJSONBody, requestName: "RESTPatchAPISessionJSONBody" },
    { label: "/v4/routeplanner/status", method: "GET", path: /^\/v4\/routeplanner\/status$/, schema: P.RESTGetAPIRoutePlannerStatusResult, name: "RESTGetAPIRoutePlannerStatusResult" },
    { label: "/v4/routeplanner/free/*", method: "POST", path: /^\/v4\/routeplanner\/free\/(address|all)$/, schema: "empty" },
];

/** `null` when `value` decodes; otherwise one line per issue: `path: message`. */
function decode(schema, value, strict) {
    const result = Schema.decodeUnknownEither(schema, strict ? { onExcessProperty: "error", errors: "all" } : { errors: "all" })(value);
    if (Either.isRight(result)) return null;
    return ParseResult.ArrayFormatter.formatErrorSync(result.left)
        .map((i) => `  ${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`)
        .join("\n");
}

/** The schema of one WebSocket message, chosen by its op (and event type). */
const EVENTS = {
    TrackStartEvent: P.trackStartEvent,
    TrackEndEvent: P.trackEndEvent,
    TrackExceptionEvent: P.trackExceptionEvent,
    TrackStuckEvent: P.trackStuckEvent,
    WebSocketClosedEvent: P.webSocketClosedEvent,
};
function messageSchema(msg) {
    const { op, type, ...rest } = msg;
    if (op === "ready") return [P.ready, rest];
    if (op === "stats") return [P.stats, rest];
    if (op === "playerUpdate") return [P.playerUpdate, rest];
    if (op === "event" && EVENTS[type]) return [EVENTS[type], rest];
    return [null, rest];
}

function clip(text, n = 600) {
    return text.length > n ? `${text.slice(0, n)}…` : text;
}

/**
 * Checks every record. Returns `{violations, notes, counts}`; each violation and note is a
 * readable string naming the node, the request or message and what is wrong.
 */
function validate(records) {
    const violations = [];
    const notes = new Set();
    const counts = { rest: 0, ws: 0, wsByOp: {}, restByRoute: {} };
    const firstMessage = new Map();

    for (const r of records) {
        if (r.kind === "rest") {
            counts.rest++;
            const where = `[${r.node}] ${r.method} ${r.path}${r.query} → ${r.status}`;
            if (r.apiVersion !== "4") violations.push(`${where}: header Lavalink-Api-Version is ${JSON.stringify(r.apiVersion)}, want "4"`);
            const route = ROUTES.find((x) => x.method === r.method && x.path.test(r.path));
            const key = route ? `${r.method} ${route.label}` : `${r.method} ${r.path} (not a Lavalink route)`;
            counts.restByRoute[key] = (counts.restByRoute[key] || 0) + 1;
            if (route?.request && r.requestBody) {
                // What the library sent: its conformance, not the node's; reported as a note.
                let body;
                try {
                    body = JSON.parse(r.requestBody);
                } catch {
                    body = undefined;
                }
                const err = body === undefined ? "not JSON" : decode(route.request, body, false);
                if (err) notes.add(`request body of ${r.method} ${route.label} does not match ${route.requestName}: ${clip(err, 300)}`);
            }
            if (r.status === 401 || r.status === 403) {
                if (r.body !== "") violations.push(`${where}: auth rejections have an empty body, got ${clip(r.body)}`);
                continue;
            }
            if (r.status >= 300) {
                let body;
                try {
                    body = JSON.parse(r.body);
                } catch {
                    violations.push(`${where}: error response is not JSON: ${clip(r.body)}`);
                    continue;
                }
                const err = decode(P.error, body, false);
                if (err) violations.push(`${where}: error body does not match lavalink-protocol \`error\`:\n${err}\nbody: ${clip(r.body)}`);
                if (body.status !== r.status) violations.push(`${where}: error body status ${body.status} differs from the HTTP status`);
                if (body.path !== r.path) violations.push(`${where}: error body path ${JSON.stringify(body.path)}, want ${JSON.stringify(r.path)}`);
                continue;
            }
            if (!route) {
                violations.push(`${where}: a 2xx answer on a path that is not a Lavalink route`);
                continue;
            }
            if (route.schema === "empty" || r.status === 204) {
                if (r.status !== 204 || r.body !== "") violations.push(`${where}: want 204 with an empty body, got ${r.status} ${clip(r.body)}`);
                continue;
            }
            if (route.schema === "text") {
                if (!/^text\/plain/.test(r.contentType || "")) violations.push(`${where}: content type ${r.contentType}, want text/plain`);
                if (!/^\d+\.\d+\.\d+/.test(r.body)) violations.push(`${where}: version body ${JSON.stringify(r.body)} is not a semver`);
                continue;
            }
            if (!/^application\/json/.test(r.contentType || "")) violations.push(`${where}: content type ${r.contentType}, want application/json`);
            let body;
            try {
                body = JSON.parse(r.body);
            } catch {
                violations.push(`${where}: body is not JSON: ${clip(r.body)}`);
                continue;
            }
            const err = decode(route.schema, body, false);
            if (err) {
                violations.push(`${where}: does not match lavalink-protocol ${route.name}:\n${err}\nbody: ${clip(r.body)}`);
                continue;
            }
            if (route.original && decode(route.original, body, false)) {
                notes.add(`${route.name}: passes only with the erratum applied (${decode(route.original, body, false).trim()})`);
            }
            const extra = decode(route.schema, body, true);
            if (extra) notes.add(`${route.name}: fields outside the schema: ${excessPaths(extra)}`);
        } else if (r.kind === "ws-open") {
            const where = `[${r.node}] WebSocket #${r.conn}`;
            if (r.status !== 101) {
                // Refused upgrades (a node that is being killed, a proxy that refuses) are not node answers
                // unless the node itself answered.
                if (r.status !== 502 && r.status !== 503) violations.push(`${where}: upgrade answered ${r.status}`);
                continue;
            }
            if (r.apiVersion !== "4") violations.push(`${where}: upgrade response header Lavalink-Api-Version is ${JSON.stringify(r.apiVersion)}`);
            if (r.sessionResumed !== "true" && r.sessionResumed !== "false") violations.push(`${where}: Session-Resumed header is ${JSON.stringify(r.sessionResumed)}`);
        } else if (r.kind === "ws") {
            counts.ws++;
            const where = `[${r.node}] WebSocket #${r.conn} message`;
            if (r.binary) {
                violations.push(`${where}: binary frame (Lavalink sends text frames only)`);
                continue;
            }
            let msg;
            try {
                msg = JSON.parse(r.text);
            } catch {
                violations.push(`${where}: not JSON: ${clip(r.text)}`);
                continue;
            }
            const op = msg.op === "event" ? `event ${msg.type}` : msg.op;
            counts.wsByOp[op] = (counts.wsByOp[op] || 0) + 1;
            if (!firstMessage.has(`${r.node}#${r.conn}`)) {
                firstMessage.set(`${r.node}#${r.conn}`, msg.op);
                if (msg.op !== "ready") violations.push(`${where}: the first message is ${JSON.stringify(msg.op)}, not ready`);
            }
            const [schema, fields] = messageSchema(msg);
            if (!schema) {
                violations.push(`${where}: unknown op/type ${JSON.stringify(op)}: ${clip(r.text)}`);
                continue;
            }
            const err = decode(P.message, msg, false) && decode(schema, fields, false);
            if (err) {
                violations.push(`${where} (${op}) does not match lavalink-protocol:\n${err}\nmessage: ${clip(r.text)}`);
                continue;
            }
            if (msg.op === "stats" && !("frameStats" in msg)) violations.push(`${where}: stats message without the frameStats key`);
            const extra = decode(schema, fields, true);
            if (extra) notes.add(`WebSocket ${op}: fields outside the schema: ${excessPaths(extra)}`);
        }
    }
    return { violations, notes: [...notes], counts };
}

/** The property names an excess-property decode complained about, compactly. */
function excessPaths(text) {
    return text
        .split("\n")
        .map((line) => line.trim().replace(/: is unexpected.*$/, ""))
        .join(", ");
}

/** Fails (throws) when there is any violation, printing them all; prints the notes and counts. */
function assertValid(records, label) {
    const { violations, notes, counts } = validate(records);
    const summary = `${label}: ${counts.rest} REST responses and ${counts.ws} WebSocket messages checked against lavalink-protocol`;
    console.log(`# ${summary}`);
    console.log(`#   REST: ${JSON.stringify(counts.restByRoute)}`);
    console.log(`#   WS:   ${JSON.stringify(counts.wsByOp)}`);
    for (const n of notes) console.log(`#   note: ${n}`);
    if (violations.length) {
        throw new Error(`${violations.length} schema violation(s):\n\n${violations.join("\n\n")}`);
    }
    return counts;
}

module.exports = { validate, assertValid };
