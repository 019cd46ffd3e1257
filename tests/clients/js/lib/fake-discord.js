// The fake Discord voice server (the workspace's `fake-discord` binary) as a child process,
// driven over its JSON-lines control protocol on stdin/stdout. It also plays the part of the
// Discord *main* gateway for the libraries: `voiceUpdate()` answers a bot's op 4 (voice state
// update) with the VOICE_STATE_UPDATE and VOICE_SERVER_UPDATE dispatches Discord would send,
// carrying credentials registered at the fake voice server.
"use strict";

const path = require("node:path");
const readline = require("node:readline");
const procs = require("./procs");
const { FAKE_DISCORD_BIN, tempDir } = require("./util");

class FakeDiscord {
    static async start() {
        const dir = tempDir("acoustic-js-fake-");
        const caFile = path.join(dir, "ca.pem");
        const child = procs.start(FAKE_DISCORD_BIN, ["--ca-file", caFile], {
            stdio: ["pipe", "pipe", "inherit"],
        });
        const fake = new FakeDiscord(child, caFile);
        const failed = new Promise((_, reject) => child.once("error", (err) => reject(new Error(`fake-discord: ${err.message} (build it: cargo build -p fake-discord --bin fake-discord)`))));
        const ready = await Promise.race([fake.nextLine(15_000), failed]);
        if (ready.event !== "ready") throw new Error(`fake-discord: unexpected first line ${JSON.stringify(ready)}`);
        fake.endpoint = ready.endpoint;
        return fake;
    }

    constructor(child, caFile) {
        this.child = child;
        this.caFile = caFile;
        this.nextId = 1;
        this.pending = new Map();
        this.lineWaiters = [];
        this.exited = false;
        /** guild id → {channelId, session_id} of the bot's current voice state. */
        this.voiceStates = new Map();
        const rl = readline.createInterface({ input: child.stdout });
        rl.on("line", (line) => this.onLine(line));
        child.once("exit", (code, signal) => {
            this.exited = true;
            const err = new Error(`fake-discord exited (${code ?? signal})`);
            for (const { reject } of this.pending.values()) reject(err);
            this.pending.clear();
        });
    }

    onLine(line) {
        if (!line.trim()) return;
        const msg = JSON.parse(line);
        if (msg.id !== undefined && this.pending.has(msg.id)) {
            const { resolve, reject, cmd } = this.pending.get(msg.id);
            this.pending.delete(msg.id);
            if (msg.ok) resolve(msg.result);
            else reject(new Error(`fake-discord ${cmd}: ${msg.error}`));
            return;
        }
        const waiter = this.lineWaiters.shift();
        if (waiter) waiter(msg);
    }

    nextLine(timeoutMs) {
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error("fake-discord did not start")), timeoutMs);
            this.lineWaiters.push((msg) => {
                clearTimeout(timer);
                resolve(msg);
            });
        });
    }

    /** Runs one control command. Note: the server runs commands one after another. */
    call(cmd, args = {}) {
        if (this.exited) return Promise.reject(new Error("fake-discord is not running"));
        const id = this.nextId++;
        return new Promise((resolve, reject) => {
            this.pending.set(id, { resolve, reject, cmd });
            this.child.stdin.write(`${JSON.stringify({ id, cmd, ...args })}\n`);
        });
    }

    /** Registers a voice session for the bot in `guildId`; returns `{token, session_id, endpoint}`. */
    registerSession(guildId, userId, channelId) {
        return this.call("register_session", { guild_id: guildId, user_id: userId, channel_id: channelId });
    }

    /** Every stream the guild had (one per Identify), oldest first, without media. */
    reports(guildId) {
        return this.call("reports", { guild_id: guildId });
    }

    /** The guild's current stream, with the tone analysis per window of `windowS` seconds. */
    report(guildId, windowS = 0.1) {
        return this.call("report", { guild_id: guildId, window_s: windowS });
    }

    /** Packets received on the guild's current stream (0 when it has none). */
    async packets(guildId) {
        const all = await this.reports(guildId);
        return all.length ? all[all.length - 1].packets : 0;
    }

    /** Packets received on all of the guild's streams together. */
    async totalPackets(guildId) {
        const all = await this.reports(guildId);
        return all.reduce((n, r) => n + r.packets, 0);
    }

    events(since = 0) {
        return this.call("events", { since });
    }

    /**
     * Answers a bot's gateway op 4 the way Discord does: joining a channel gives a
     * VOICE_STATE_UPDATE (with a fresh voice session id) and a VOICE_SERVER_UPDATE (token and
     * endpoint); asking again for the channel the bot is already in only repeats its voice
     * state; leaving (channel_id null) gives a VOICE_STATE_UPDATE with channel_id null.
     * `dispatch(packet)` receives each gateway packet `{op: 0, t, d}`.
     */
    async voiceUpdate(userId, payload, dispatch) {
        if (payload.op !== 4) return;
        const d = payload.d;
        const guildId = String(d.guild_id);
        const state = (channelId, sessionId) => ({
            op: 0,
            t: "VOICE_STATE_UPDATE",
            d: { guild_id: guildId, channel_id: channelId, user_id: userId, session_id: sessionId, self_deaf: !!d.self_deaf, self_mute: !!d.self_mute, deaf: false, mute: false, suppress: false },
        });
        const current = this.voiceStates.get(guildId);
        if (!d.channel_id) {
            this.voiceStates.delete(guildId);
            await dispatch(state(null, current?.session_id ?? ""));
            return;
        }
        if (current && current.channelId === String(d.channel_id)) {
            await dispatch(state(current.channelId, current.session_id));
            return;
        }
        const channelId = String(d.channel_id);
        const creds = await this.registerSession(guildId, userId, channelId);
        this.voiceStates.set(guildId, { channelId, session_id: creds.session_id });
        await dispatch(state(channelId, creds.session_id));
        await dispatch({ op: 0, t: "VOICE_SERVER_UPDATE", d: { guild_id: guildId, token: creds.token, endpoint: creds.endpoint } });
    }

    async stop() {
        if (this.exited) return;
        const gone = procs.exited(this.child);
        this.child.stdin.end();
        const timer = setTimeout(() => this.child.kill("SIGKILL"), 3000);
        await gone;
        clearTimeout(timer);
    }
}

module.exports = { FakeDiscord };
