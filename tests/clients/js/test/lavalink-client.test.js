// lavalink-client 2.x against Acoustic, as a bot uses it: a LavalinkManager whose sendToShard
// goes to the fake Discord server (which answers with the voice dispatches), node search and
// decoding, a player with a queue, its events, seek / pitch / pause / volume heard in the audio,
// auto-skip to the next queued track, stop, a bot restart that resumes the session, and destroy.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const readline = require("node:readline");
const path = require("node:path");
const { Rig } = require("../lib/rig");
const audio = require("../lib/audio");
const procs = require("../lib/procs");
const { createManager } = require("../lib/lavalink-client-bot");
const { assertValid } = require("../lib/schema");
const { BOT_ID, sleep, waitFor, nextEvent } = require("../lib/util");

const GUILD = "201";
const CHANNEL = "1000201";
const RESUME_GUILD = "202";
const RESUME_CHANNEL = "1000202";
const T = 15_000;

let rig;
let manager;
let node;
let player;
let mp3;
let playlist;
const errors = [];

before(async () => {
    rig = await Rig.start();
});

after(async () => {
    for (const m of [manager, resumed?.manager]) {
        for (const n of m?.nodeManager.nodes.values() ?? []) {
            n.socket?.removeAllListeners();
            n.socket?.terminate();
            n.resetReconnectionAttempts?.();
            n.resetAckTimeouts?.(true, true);
        }
    }
    await rig?.stop();
});

let resumed;
const packets = (g = GUILD) => rig.discord.packets(g);
const waitPackets = (n, what, g = GUILD) => waitFor(`${n} packets (${what})`, async () => (await packets(g)) >= n, T, 40);

function gateway(payload, dispatch) {
    return rig.discord.voiceUpdate(BOT_ID, payload, dispatch);
}

test("connects to the node as a bot would", async () => {
    const proxy = rig.proxies.get("acoustic");
    manager = createManager({ nodes: [{ id: "acoustic", host: proxy.host, port: proxy.port }], gateway });
    manager.nodeManager.on("error", (n, err) => errors.push(`${n?.id}: ${err?.stack ?? err}`));
    const connected = nextEvent(manager.nodeManager, "connect", () => true, T);
    await manager.init({ id: BOT_ID, username: "acoustic-js-test" });
    [node] = await connected;
    await waitFor("ready (session id)", () => node.sessionId, T);
    assert.equal(node.info.version.major, 4);
    assert.ok(node.info.filters.includes("timescale"));
    assert.match(await node.fetchVersion(), /^4\.\d+\.\d+/);
    const stats = await node.fetchStats();
    assert.equal(stats.players, 0);
    assert.ok(stats.cpu.lavalinkLoad >= 0 && stats.cpu.lavalinkLoad <= 1, JSON.stringify(stats.cpu));
});

test("searches an http track and an M3U playlist; decodes one and several tracks", async () => {
    const requester = { id: "42", username: "tester" };
    const res = await node.search({ query: rig.url("staircase/staircase.mp3") }, requester);
    assert.equal(res.loadType, "track");
    mp3 = res.tracks[0];
    assert.equal(mp3.info.title, "Acoustic Staircase");
    assert.equal(mp3.info.sourceName, "http");
    assert.ok(Math.abs(mp3.info.duration - 10_000) < 100, `duration ${mp3.info.duration}`);

    playlist = await node.search({ query: rig.url("playlist.m3u") }, requester);
    assert.equal(playlist.loadType, "playlist");
    assert.equal(playlist.tracks.length, 3);
    assert.equal(playlist.tracks[1].info.uri, rig.url("staircase/staircase.flac"));

    const one = await node.decode.singleTrack(mp3.encoded, requester);
    assert.equal(one.info.uri, mp3.info.uri);
    const many = await node.decode.multipleTracks(playlist.tracks.map((t) => t.encoded), requester);
    assert.deepEqual(
        many.map((t) => t.info.uri),
        playlist.tracks.map((t) => t.info.uri),
    );
});

test("creates a player and joins voice with the fake server's credentials", async () => {
    player = manager.createPlayer({ guildId: GUILD, voiceChannelId: CHANNEL, textChannelId: "1", selfDeaf: true, volume: 100 });
    await player.connect();
    assert.equal(manager.sentToShard.at(-1).d.channel_id, CHANNEL);
    await waitFor("voice credentials sent to the node", () => player.voice?.token, T);
    assert.equal(await rig.discord.call("wait_connected", { guild_id: GUILD, timeout_ms: T }), true, "voice gateway handshake");
    const remote = await node.fetchPlayer(GUILD);
    assert.equal(remote.voice.channelId, CHANNEL);
});

test("plays the queue; seek, pitch, pause and volume are heard; auto-skips to the next track", async () => {
    const started = nextEvent(manager, "trackStart", (p) => p.guildId === GUILD, T);
    await player.queue.add([mp3, playlist.tracks[1]]);
    await player.play();
    const [, track, payload] = await started;
    assert.equal(track.info.uri, mp3.info.uri);
    assert.equal(payload.type, "TrackStartEvent");
    assert.deepEqual(payload.track.userData.requester, { id: "42", username: "tester" });

    await waitPackets(120, "2.4 s played");
    const seekAt = await packets();
    await player.seek(4000);
    await waitPackets(seekAt + 50, "1 s after the seek");
    const pitchAt = await packets();
    await player.filterManager.setPitch(1.5);
    const remote = await node.fetchPlayer(GUILD);
    assert.equal(remote.filters.timescale.pitch, 1.5);
    await waitPackets(pitchAt + 60, "1.2 s pitched");
    const resetAt = await packets();
    await player.filterManager.resetFilters();
    await waitPackets(resetAt + 35, "0.7 s after the reset");
    const pauseAt = await packets();
    await player.pause();
    await sleep(800);
    const pausedAt = await packets();
    await sleep(400);
    assert.equal(await packets(), pausedAt, "no packets while paused");
    assert.ok(pausedAt - pauseAt <= 15, `${pausedAt - pauseAt} packets after the pause`);
    const nextStart = nextEvent(manager, "trackStart", (p, t) => p.guildId === GUILD && t?.info.uri === playlist.tracks[1].info.uri, 20_000);
    const ended = nextEvent(manager, "trackEnd", (p) => p.guildId === GUILD, 20_000);
    await player.resume();
    await waitPackets(pausedAt + 25, "0.5 s after resuming");
    const volumeAt = await packets();
    await player.setVolume(50);
    assert.equal((await node.fetchPlayer(GUILD)).volume, 50);
    const [, endTrack, endPayload] = await ended;
    assert.equal(endPayload.reason, "finished");
    assert.equal(endTrack.info.uri, mp3.info.uri);
    const endAt = await packets();
    await nextStart;

    const rep = await rig.discord.report(GUILD, 0.1);
    const a = rep.analysis;
    const t = audio.atPacket;
    const msg = `steps: ${audio.describe(audio.stepRuns(a, 0))}`;
    const glitches = audio.glitches(audio.stepRuns(a, 0));
    console.log(`# ${JSON.stringify({ packets: rep.packets, gap_max: rep.gap_max, gaps_over_40ms: rep.gaps_over_40ms, timestamp_jumps: rep.timestamp_jumps, mid_step_glitches_at_s: glitches })}`);
    assert.deepEqual(audio.steps(audio.stepRuns(a, 0, t(seekAt))), [0, 1, 2], msg);
    const afterSeek = audio.steps(audio.stepRuns(a, t(seekAt) + 0.25, t(pitchAt)));
    assert.equal(afterSeek[0], 4, `first step after seek(4000); ${msg}`);
    // timescale pitch 1.5: the same steps, every tone 1.5 times higher.
    const pitched = audio.stepRuns(a, t(pitchAt) + 0.3, t(resetAt), 1.5);
    const pitchedSteps = audio.steps(pitched);
    assert.ok(pitchedSteps.length >= 1 && pitchedSteps.every((s) => s === 5 || s === 6), `pitched ×1.5: ${audio.describe(pitched)}; ${msg}`);
    const pitchedSeconds = pitched.filter((r) => typeof r.step === "number").reduce((s, r) => s + r.seconds, 0);
    assert.ok(pitchedSeconds >= 0.6, `only ${pitchedSeconds} s read as pitched ×1.5: ${audio.describe(pitched)}`);
    const afterReset = audio.steps(audio.stepRuns(a, t(resetAt) + 0.2, t(pauseAt)), 0.1);
    assert.ok(afterReset.length && afterReset.every((s) => s === 6 || s === 7), `after resetFilters: ${afterReset}; ${msg}`);
    // Volume 50: Lavalink's curve.
    const want = audio.volumeGainDb(50);
    const got = audio.level(a, t(volumeAt) + 0.3, t(volumeAt) + 0.9) - audio.level(a, t(pausedAt) + 0.05, t(volumeAt));
    assert.ok(Math.abs(got - want) < 1.0, `volume 50 changed the level by ${got.toFixed(2)} dB, want ${want.toFixed(2)}`);
    const tail = audio.steps(audio.stepRuns(a, t(volumeAt), t(endAt)));
    assert.equal(tail.at(-1), 9, msg);
    await rig.assertCleanStream(GUILD, "lavalink-client playback");
});

test("stops the queued track: TrackEndEvent stopped, queue end", async () => {
    const from = await packets();
    await waitPackets(from + 25, "0.5 s of the second track");
    const queueEnd = nextEvent(manager, "queueEnd", (p) => p.guildId === GUILD, T);
    await player.stopPlaying();
    const [, , payload] = await queueEnd;
    assert.equal(payload.type, "TrackEndEvent");
    assert.equal(payload.reason, "stopped");
    assert.equal((await node.fetchPlayer(GUILD)).track, null);
});

test("a restarted bot resumes its session: players kept playing and are controllable", async () => {
    // The bot process connects, plays and enables resuming, then crashes (SIGKILL).
    const creds = await rig.discord.registerSession(RESUME_GUILD, BOT_ID, RESUME_CHANNEL);
    const proxy = rig.proxies.get("acoustic");
    const args = { host: proxy.host, port: proxy.port, guildId: RESUME_GUILD, channelId: RESUME_CHANNEL, voice: creds, url: rig.url("staircase/staircase.flac") };
    const bot = procs.start(process.execPath, [path.join(__dirname, "..", "lib", "resume-bot.js"), JSON.stringify(args)], { stdio: ["ignore", "pipe", "inherit"] });
    const line = await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("the bot process did not report its session")), 20_000);
        readline.createInterface({ input: bot.stdout }).once("line", (l) => {
            clearTimeout(timer);
            resolve(l);
        });
        bot.once("exit", (code) => reject(new Error(`the bot process exited (${code})`)));
    });
    const { sessionId } = JSON.parse(line);
    await waitPackets(50, "1 s of the bot's track", RESUME_GUILD);
    bot.kill("SIGKILL");
    await procs.exited(bot);
    const atCrash = await packets(RESUME_GUILD);
    await sleep(1000);

    // The new bot process: the same session id in the node options (lavalink-client's way).
    const m2 = createManager({ nodes: [{ id: "acoustic", host: proxy.host, port: proxy.port, sessionId }], gateway });
    resumed = { manager: m2 };
    const resumedEvent = nextEvent(m2.nodeManager, "resumed", () => true, T);
    await m2.init({ id: BOT_ID, username: "acoustic-js-test" });
    const [n2, payload, fetched] = await resumedEvent;
    assert.equal(payload.resumed, true);
    assert.equal(payload.sessionId, sessionId);
    assert.equal(n2.sessionId, sessionId);
    const mine = fetched.find((p) => p.guildId === RESUME_GUILD);
    assert.ok(mine, `the resumed session lists the player: ${JSON.stringify(fetched)}`);
    assert.equal(mine.track.info.uri, args.url);
    assert.equal(mine.state.connected, true);
    assert.ok((await packets(RESUME_GUILD)) > atCrash + 30, "the player kept playing while the bot was down");
    assert.equal((await rig.discord.reports(RESUME_GUILD)).length, 1, "voice was never reconnected");

    // Rebuild the player from the fetched state and control it.
    const p2 = m2.createPlayer({ guildId: RESUME_GUILD, voiceChannelId: mine.voice.channelId, node: n2.id });
    p2.voice = mine.voice;
    p2.queue.current = m2.utils.buildTrack(mine.track, mine.track.userData?.requester);
    p2.playing = true;
    const ended = nextEvent(m2, "queueEnd", (p) => p.guildId === RESUME_GUILD, T);
    await p2.stopPlaying();
    const [, , endPayload] = await ended;
    assert.equal(endPayload.reason, "stopped");
    const open = rig.records.filter((r) => r.kind === "ws-open" && r.requestSessionId === sessionId);
    assert.equal(open.at(-1).sessionResumed, "true");
    await rig.assertCleanStream(RESUME_GUILD, "stream across the bot restart");
    await p2.destroy("test done");
});

test("destroys the player: voice connection closed, player gone on the node", async () => {
    const events = (await rig.discord.events()).length;
    await player.destroy("test done");
    assert.equal(manager.sentToShard.at(-1).d.channel_id, null);
    await waitFor(
        "the voice connection to close",
        async () => (await rig.discord.events(events)).some((e) => e.kind === "closed" && e.guild_id === Number(GUILD)),
        T,
    );
    assert.deepEqual(await node.fetchAllPlayers(), []);
});

test("every REST response and WebSocket message matches the lavalink-protocol schemas", () => {
    assert.deepEqual(errors, [], "lavalink-client reported errors");
    const counts = assertValid(rig.records, "lavalink-client");
    for (const op of ["ready", "stats", "playerUpdate", "event TrackStartEvent", "event TrackEndEvent"]) {
        assert.ok(counts.wsByOp[op] > 0, `saw ${op}`);
    }
});
