// A test rig: the fake Discord voice server, a media server over the generated test media, and
// one or more Acoustic nodes, each behind a recording proxy. Clients are pointed at the proxies;
// everything the nodes answer ends up in `rig.records` for schema validation.
"use strict";

const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const { AcousticNode } = require("./acoustic");
const { FakeDiscord } = require("./fake-discord");
const { MediaServer } = require("./media-server");
const { RecordingProxy } = require("./proxy");
const { MEDIA_DIR, PASSWORD } = require("./util");

class Rig {
    /**
     * @param {object} [opts]
     * @param {string[]} [opts.nodes]  names of the nodes to start (default one, "acoustic")
     * @param {string} [opts.serverYaml]  extra `lavalink.server:` lines for every node
     */
    static async start({ nodes = ["acoustic"], serverYaml = "    playerUpdateInterval: 1\n" } = {}) {
        if (!fs.existsSync(path.join(MEDIA_DIR, "playlist.m3u"))) {
            throw new Error(`no test media in ${MEDIA_DIR}: run tests/media/generate.sh (run.sh does)`);
        }
        const rig = new Rig();
        rig.discord = await FakeDiscord.start();
        rig.media = await MediaServer.start(MEDIA_DIR);
        for (const name of nodes) await rig.addNode(name, serverYaml);
        return rig;
    }

    constructor() {
        this.records = [];
        this.nodes = new Map();
        this.proxies = new Map();
    }

    async addNode(name, serverYaml) {
        const node = await AcousticNode.start({ name, caFile: this.discord.caFile, serverYaml });
        const proxy = await RecordingProxy.start(name, node.host, node.port, this.records);
        this.nodes.set(name, node);
        this.proxies.set(name, proxy);
        return { node, proxy };
    }

    /** A REST call to node `name` through its recording proxy (so the answer is validated too). */
    async rest(name, method, pathAndQuery, body) {
        const proxy = this.proxies.get(name);
        const res = await fetch(`http://${proxy.host}:${proxy.port}${pathAndQuery}`, {
            method,
            headers: { Authorization: PASSWORD, ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
            body: body === undefined ? undefined : JSON.stringify(body),
        });
        const text = await res.text();
        let json = text;
        try {
            json = text ? JSON.parse(text) : null;
        } catch {
            // not JSON: keep the text
        }
        return { status: res.status, body: json };
    }

    /** URL of a generated media file on the media server. */
    url(rel) {
        return this.media.url(rel);
    }

    /**
     * Checks the transport of the guild's current stream: packets arrived, none lost, duplicated
     * or reordered, every one decrypted (transport AEAD and DAVE) and decoded.
     */
    async assertCleanStream(guildId, what) {
        const reports = await this.discord.reports(guildId);
        assert.ok(reports.length > 0, `${what}: no voice stream for guild ${guildId}`);
        const r = reports[reports.length - 1];
        const summary = JSON.stringify({
            packets: r.packets,
            lost: r.lost_packets,
            gaps: r.seq_gap_list,
            dup: r.duplicates,
            reordered: r.reordered,
            transport_fail: r.transport_decrypt_failures,
            dave_fail: r.dave_decrypt_failures,
            opus_err: r.opus_decode_errors,
            dave_frames: r.dave_frames,
            plain_while_dave: r.plain_frames_while_dave,
            pps: r.packets_per_second,
            gap_max: r.gap_max,
            mode: r.mode,
        });
        assert.ok(r.packets > 0, `${what}: no packets ${summary}`);
        assert.equal(r.lost_packets, 0, `${what}: lost packets ${summary}`);
        assert.equal(r.duplicates, 0, `${what}: duplicates ${summary}`);
        assert.equal(r.reordered, 0, `${what}: reordered ${summary}`);
        assert.equal(r.transport_decrypt_failures, 0, `${what}: transport decrypt failures ${summary}`);
        assert.equal(r.dave_decrypt_failures, 0, `${what}: DAVE decrypt failures ${summary}`);
        assert.equal(r.opus_decode_errors, 0, `${what}: Opus decode errors ${summary}`);
        assert.equal(r.bad_headers, 0, `${what}: bad RTP headers ${summary}`);
        assert.equal(r.plain_frames_while_dave, 0, `${what}: plain frames while DAVE was on ${summary}`);
        return r;
    }

    async stop() {
        for (const p of this.proxies.values()) await p.stop().catch(() => {});
        for (const n of this.nodes.values()) await n.stop().catch(() => {});
        await this.media?.stop().catch(() => {});
        await this.discord?.stop().catch(() => {});
    }
}

module.exports = { Rig };
