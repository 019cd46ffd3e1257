// Three Acoustic nodes in one lavalink-client node pool. lavalink-client puts each new player on
// the node with the fewest players according to the node's latest `stats` message (sent on
// connect and every 60 s), so: another bot's player is created on node A first; the pool's first
// player goes to B (A is loaded); after B's next `stats` reports it, the next two go to C. Then
// node C is killed with SIGKILL; lavalink-client (autoMove) moves C's players to A and B, and
// their audio continues at the fake Discord server from where it was. The `stats` figures the
// balancing relies on are checked against the players that exist.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { Rig } = require("../lib/rig");
const audio = require("../lib/audio");
const { MediaServer } = require("../lib/media-server");
const { writeLongStaircase } = require("../lib/long-staircase");
const { createManager } = require("../lib/lavalink-client-bot");
const { assertValid } = require("../lib/schema");
const { BOT_ID, sleep, waitFor, nextEvent, tempDir } = require("../lib/util");

const NODES = ["node-a", "node-b", "node-c"];
const T = 15_000;
const G1 = "301";
const G2 = "302";
const G3 = "303";
const OTHER = "399";

let rig;
let longMedia;
let longUrl;
let other;
let pool;
let track;
const players = {};
const errors = [];

before(async () => {
    rig = await Rig.start({ nodes: NODES });
    const dir = tempDir("acoustic-js-long-");
    longMedia = await MediaServer.start(dir);
    longUrl = longMedia.url(writeLongStaircase(dir, 150));
});

after(async () => {
    for (const m of [pool, other]) {
        for (const n of m?.nodeManager.nodes.values() ?? []) {
            n.socket?.removeAllListeners();
            n.socket?.terminate();
            n.resetReconnectionAttempts?.();
            n.resetAckTimeouts?.(true, true);
        }
    }
    await longMedia?.stop();
    await rig?.stop();
});

const gateway = (payload, dispatch) => rig.discord.voiceUpdate(BOT_ID, payload, dispatch);
const proxyOf = (name) => rig.proxies.get(name);
const nodeOpts = (name) => ({ id: name, host: proxyOf(name).host, port: proxyOf(name).port });

/** The node's own view of its load, straight from its REST API. */
async function stats(name) {
    const r = await rig.rest(name, "GET", "/v4/stats");
    assert.equal(r.status, 200);
    return r.body;
}

async function assertHonestStats(name, want) {
    const s = await stats(name);
    assert.equal(s.players, want.players, `${name} players: ${JSON.stringify(s)}`);
    assert.equal(s.playingPlayers, want.playing, `${name} playingPlayers: ${JSON.stringify(s)}`);
    assert.ok(s.cpu.systemLoad >= 0 && s.cpu.systemLoad <= 1, `${name} systemLoad ${s.cpu.systemLoad}`);
    assert.ok(s.cpu.lavalinkLoad >= 0 && s.cpu.lavalinkLoad <= 1, `${name} lavalinkLoad ${s.cpu.lavalinkLoad}`);
    assert.ok(s.cpu.cores >= 1, `${name} cores`);
    assert.ok(s.uptime > 0 && s.memory.used > 0, `${name} uptime/memory: ${JSON.stringify(s)}`);
    return s;
}

async function play(guild) {
    const player = pool.createPlayer({ guildId: guild, voiceChannelId: `1000${guild}`, selfDeaf: true });
    await player.connect();
    await waitFor(`voice for ${guild}`, () => player.voice?.token, T);
    const started = nextEvent(pool, "trackStart", (p) => p.guildId === guild, T);
    await player.queue.add(track);
    await player.play();
    await started;
    players[guild] = player;
    return player;
}

const packets = (g) => rig.discord.packets(g);

test("another bot's player loads node A before the pool connects", async () => {
    other = createManager({ nodes: [nodeOpts("node-a")], gateway });
    const connected = nextEvent(other.nodeManager, "connect", () => true, T);
    await other.init({ id: BOT_ID, username: "other-bot" });
    const [n] = await connected;
    await waitFor("ready", () => n.sessionId, T);
    const res = await n.search({ query: longUrl }, { id: "1" });
    assert.equal(res.loadType, "track");
    track = res.tracks[0];
    // A player with a paused track and no voice: it counts in `players`, not in `playingPlayers`.
    const p = other.createPlayer({ guildId: OTHER, voiceChannelId: "1000399" });
    await p.queue.add(track);
    await p.play({ paused: true });
    await assertHonestStats("node-a", { players: 1, playing: 0 });
});

test("the pool connects to three nodes and places players by load", async () => {
    pool = createManager({ nodes: NODES.map(nodeOpts), gateway, extra: { autoMove: true } });
    pool.nodeManager.on("error", (n, err) => errors.push(`${n?.id}: ${err?.message ?? err}`));
    await pool.init({ id: BOT_ID, username: "pool-bot" });
    await waitFor("all three nodes ready with stats", () => NODES.every((id) => pool.nodeManager.nodes.get(id)?.sessionId && pool.nodeManager.nodes.get(id)?.stats), T);
    const seen = Object.fromEntries(NODES.map((id) => [id, pool.nodeManager.nodes.get(id).stats.players]));
    assert.deepEqual(seen, { "node-a": 1, "node-b": 0, "node-c": 0 }, "stats on connect");

    const p1 = await play(G1);
    assert.equal(p1.node.id, "node-b", "the first player avoids the loaded node A");
    await assertHonestStats("node-b", { players: 1, playing: 1 });

    // B's next periodic stats message (at most 60 s away) tells the pool about that player.
    const nodeB = pool.nodeManager.nodes.get("node-b");
    const t0 = performance.now();
    await waitFor("node B's next stats message", () => nodeB.stats.players === 1, 65_000, 200);
    console.log(`# node B's stats reported its player after ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const p2 = await play(G2);
    const p3 = await play(G3);
    assert.equal(p2.node.id, "node-c", "A and B have one player each, C none");
    assert.equal(p3.node.id, "node-c", "C's stats are unchanged until its next stats message");

    for (const g of [G1, G2, G3]) {
        await waitFor(`audio for ${g}`, async () => (await packets(g)) >= 75, T);
    }
    await assertHonestStats("node-a", { players: 1, playing: 0 });
    await assertHonestStats("node-b", { players: 1, playing: 1 });
    await assertHonestStats("node-c", { players: 2, playing: 2 });
});

test("node C is killed: the pool moves its players to A and B and playback continues", async () => {
    const before = {};
    for (const g of [G2, G3]) {
        const r = await rig.rest("node-c", "GET", `/v4/sessions/${pool.nodeManager.nodes.get("node-c").sessionId}/players/${g}`);
        before[g] = { position: r.body.state.position, streams: (await rig.discord.reports(g)).length };
    }
    const g1Before = await packets(G1);
    const killedAt = performance.now();
    await rig.nodes.get("node-c").kill();

    await waitFor(
        "the players to move off node C",
        () => [G2, G3].every((g) => players[g].node.id !== "node-c" && !players[g].getData("internal_nodeMigrating")),
        20_000,
    );
    const moved = Object.fromEntries([G2, G3].map((g) => [g, players[g].node.id]));
    console.log(`# moved after ${Math.round(performance.now() - killedAt)} ms: ${JSON.stringify(moved)}`);
    assert.ok(Object.values(moved).every((id) => id === "node-a" || id === "node-b"), JSON.stringify(moved));
    assert.notEqual(moved[G2], moved[G3], "the pool spreads the moved players over A and B");

    for (const g of [G2, G3]) {
        await waitFor(
            `a new voice stream with audio for ${g}`,
            async () => {
                const all = await rig.discord.reports(g);
                return all.length > before[g].streams && all.at(-1).packets >= 75;
            },
            20_000,
            100,
        );
        const r = await rig.assertCleanStream(g, `stream of ${g} on its new node`);
        const rep = await rig.discord.report(g, 0.1);
        const runs = audio.stepRuns(rep.analysis, 0.2);
        const first = audio.steps(runs, 0.15)[0];
        // It resumes at the position the pool last heard of (playerUpdate every second): at most
        // ~2 s before where node C was when it died.
        const atKill = Math.floor(before[g].position / 1000) % 10;
        const behind = (atKill - first + 10) % 10;
        assert.ok(behind <= 2 || behind === 9, `${g}: node C was at step ${atKill} (${before[g].position} ms), the new node started at ${first}: ${audio.describe(runs)}`);
        console.log(`# ${g}: ${r.packets} packets on ${moved[g]}, resumed at step ${first} (was at ${atKill})`);
    }
    // The player on B never noticed.
    assert.equal((await rig.discord.reports(G1)).length, 1, "G1 kept its voice connection");
    // G1 went on playing through the failover: 100 more packets (2 s) arrive, on the same stream.
    await waitFor("G1 to keep playing", async () => (await packets(G1)) > g1Before + 100, 10_000, 100);
    assert.equal((await rig.discord.reports(G1)).length, 1, "G1 still on its first voice connection");
    await rig.assertCleanStream(G1, "G1 across the failover");

    const onA = [G2, G3].filter((g) => moved[g] === "node-a").length;
    const onB = 2 - onA;
    await assertHonestStats("node-a", { players: 1 + onA, playing: onA });
    await assertHonestStats("node-b", { players: 1 + onB, playing: 1 + onB });
});

test("every REST response and WebSocket message matches the lavalink-protocol schemas", () => {
    const unexpected = errors.filter((e) => !/node-c/.test(e));
    assert.deepEqual(unexpected, [], "errors other than node C being down");
    const counts = assertValid(rig.records, "node pool");
    // Frame statistics, when a node reports them, account for one 20 ms slot each per minute.
    const frameStats = rig.records
        .filter((r) => r.kind === "ws" && r.text.includes('"op":"stats"'))
        .map((r) => ({ node: r.node, fs: JSON.parse(r.text).frameStats }))
        .filter((x) => x.fs);
    for (const { node, fs } of frameStats) {
        assert.ok(fs.sent >= 0 && fs.sent <= 3000 && fs.nulled >= 0, `${node}: ${JSON.stringify(fs)}`);
        assert.ok(Math.abs(fs.sent + fs.nulled + fs.deficit - 3000) <= 1, `${node}: sent + nulled + deficit is one minute of frames: ${JSON.stringify(fs)}`);
    }
    console.log(`# ${frameStats.length} stats messages carried frameStats: ${JSON.stringify(frameStats)}`);
    for (const op of ["ready", "stats", "playerUpdate", "event TrackStartEvent"]) {
        assert.ok(counts.wsByOp[op] > 0, `saw ${op}`);
    }
});
