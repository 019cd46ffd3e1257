// shoukaku 4.x against Acoustic, as a bot uses it: a connector (here wired to the fake Discord
// server instead of a Discord gateway), a node, REST loading, a voice join fed with the fake
// server's credentials, playback controlled through shoukaku's Player, its events, a session
// resume after the connection drops, and leaving. The audio that reached the fake Discord server
// is read back (staircase: second k is 200 + 100·k Hz) to check what each control did.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { Shoukaku, Connector } = require("shoukaku");
const { Rig } = require("../lib/rig");
const audio = require("../lib/audio");
const { assertValid } = require("../lib/schema");
const { BOT_ID, PASSWORD, sleep, waitFor, nextEvent } = require("../lib/util");

const GUILD = "101";
const CHANNEL = "1000101";
const T = 15_000;

/** shoukaku's Connector for a bot whose Discord gateway is the fake server. */
class FakeGatewayConnector extends Connector {
    constructor(discord) {
        super({});
        this.discord = discord;
        this.sent = [];
    }

    // A real connector hands the payload to the Discord gateway; here the fake server answers it.
    sendPacket(shardId, payload) {
        this.sent.push(payload);
        this.discord.voiceUpdate(BOT_ID, payload, (packet) => this.raw(packet)).catch((err) => this.manager.emit("error", "gateway", err));
    }

    getId() {
        return BOT_ID;
    }

    listen(nodes) {
        this.nodes = nodes;
    }
}

let rig;
let connector;
let shoukaku;
let node;
let player;
let mp3;
let playlist;
const errors = [];
// Errors shoukaku reports while the test has cut its connection (its reconnect attempts being
// refused) are expected; any other is a failure.
let dropping = false;

before(async () => {
    rig = await Rig.start();
});

after(async () => {
    // shoukaku keeps reconnecting to a node that went away; its errors after the tests are noise.
    dropping = true;
    await rig?.stop();
});

const packets = () => rig.discord.packets(GUILD);
const waitPackets = (n, what) => waitFor(`${n} packets (${what})`, async () => (await packets()) >= n, T, 40);

test("connects to the node as a bot would", async () => {
    connector = new FakeGatewayConnector(rig.discord);
    const proxy = rig.proxies.get("acoustic");
    shoukaku = new Shoukaku(connector, [{ name: "acoustic", url: `${proxy.host}:${proxy.port}`, auth: PASSWORD }], {
        resume: true,
        resumeTimeout: 30,
        reconnectTries: 10,
        reconnectInterval: 1,
    });
    shoukaku.on("error", (name, err) => (dropping ? undefined : errors.push(`${name}: ${err?.stack ?? err}`)));
    const ready = nextEvent(shoukaku, "ready", () => true, T);
    // What the DiscordJS connector does on clientReady.
    connector.ready(connector.nodes);
    const [name, resumed] = await ready;
    assert.equal(name, "acoustic");
    assert.equal(resumed, false);
    node = shoukaku.nodes.get("acoustic");
    assert.match(node.sessionId, /^[a-z0-9]{16}$/);

    const info = await node.rest.getLavalinkInfo();
    assert.equal(info.version.major, 4);
    assert.ok(info.sourceManagers.includes("http"), JSON.stringify(info.sourceManagers));
    const stats = await node.rest.stats();
    assert.equal(stats.players, 0);
    await waitFor("a stats op", () => node.stats, T);
    assert.ok(node.stats.cpu.systemLoad >= 0 && node.stats.cpu.systemLoad <= 1, JSON.stringify(node.stats.cpu));
});

test("loads an http track and an M3U playlist, and decodes a track", async () => {
    const res = await node.rest.resolve(rig.url("staircase/staircase.mp3"));
    assert.equal(res.loadType, "track");
    mp3 = res.data;
    assert.equal(mp3.info.title, "Acoustic Staircase");
    assert.equal(mp3.info.author, "Acoustic Test Media");
    assert.equal(mp3.info.sourceName, "http");
    assert.equal(mp3.info.uri, rig.url("staircase/staircase.mp3"));
    assert.ok(Math.abs(mp3.info.length - 10_000) < 100, `length ${mp3.info.length}`);
    assert.equal(mp3.info.isSeekable, true);

    const pl = await node.rest.resolve(rig.url("playlist.m3u"));
    assert.equal(pl.loadType, "playlist");
    playlist = pl.data;
    assert.deepEqual(
        playlist.tracks.map((t) => t.info.uri),
        ["staircase/staircase.mp3", "staircase/staircase.flac", "staircase/staircase.ogg"].map((p) => rig.url(p)),
    );
    assert.equal(typeof playlist.info.name, "string");

    const decoded = await node.rest.decode(mp3.encoded);
    assert.equal(decoded.encoded, mp3.encoded);
    assert.deepEqual(decoded.info, mp3.info);

    const empty = await node.rest.resolve("zzz-not-a-source");
    assert.equal(empty.loadType, "empty");
    const failed = await node.rest.resolve(rig.url("faults/not-audio.mp3"));
    assert.equal(failed.loadType, "error");
    assert.equal(failed.data.severity, "common");

    // Errors reach the bot as shoukaku RestErrors carrying Lavalink's error body.
    assert.equal(await node.rest.getRoutePlannerStatus(), undefined, "no route planner: 204");
    await assert.rejects(node.rest.unmarkFailedAddress("1.0.0.1"), (err) => err.name === "RestError" && err.status === 500 && err.path === "/v4/routeplanner/free/address");
    await assert.rejects(node.rest.getPlayer("999"), (err) => err.status === 404 && err.message === "Player not found");
});

test("joins voice with the credentials of the fake Discord server", async () => {
    player = await shoukaku.joinVoiceChannel({ guildId: GUILD, channelId: CHANNEL, shardId: 0, deaf: true });
    const op4 = connector.sent.find((p) => p.op === 4 && p.d.guild_id === GUILD);
    assert.equal(op4.d.channel_id, CHANNEL);
    assert.equal(await rig.discord.call("wait_connected", { guild_id: GUILD, timeout_ms: T }), true, "voice gateway handshake");
    const remote = await node.rest.getPlayer(GUILD);
    assert.equal(remote.voice.channelId, CHANNEL);
    await waitFor("playerUpdate connected", async () => (await node.rest.getPlayer(GUILD)).state.connected, T);
});

test("plays; seek, filters, pause and volume are heard in the audio", async () => {
    const started = nextEvent(player, "start", () => true, T);
    const ended = nextEvent(player, "end", () => true, 30_000);
    await player.playTrack({ track: { encoded: mp3.encoded, userData: { requester: "js-test" } } });
    const [start] = await started;
    assert.equal(start.type, "TrackStartEvent");
    assert.equal(start.guildId, GUILD);
    assert.equal(start.track.info.uri, mp3.info.uri);
    assert.deepEqual(start.track.userData, { requester: "js-test" });

    await waitPackets(120, "2.4 s played");
    const seekAt = await packets();
    await player.seekTo(5000);
    await waitPackets(seekAt + 50, "1 s after the seek");
    const filterAt = await packets();
    await player.setFilterVolume(0.5);
    const remote = await node.rest.getPlayer(GUILD);
    assert.equal(remote.filters.volume, 0.5);
    await waitPackets(filterAt + 40, "0.8 s with the filter");
    const pauseAt = await packets();
    await player.setPaused(true);
    await sleep(600);
    const pausedAt = await packets();
    await sleep(600);
    assert.equal(await packets(), pausedAt, "no packets while paused");
    assert.ok(pausedAt - pauseAt <= 15, `≤ ~100 ms of buffered audio and five silence frames after the pause, got ${pausedAt - pauseAt} packets`);
    assert.equal((await node.rest.getPlayer(GUILD)).paused, true);
    await player.setPaused(false);
    const resumeAt = pausedAt;
    await waitPackets(resumeAt + 25, "0.5 s after un-pausing");
    const volumeAt = await packets();
    await player.setGlobalVolume(50);
    const [end] = await ended;
    assert.equal(end.type, "TrackEndEvent");
    assert.equal(end.reason, "finished");
    await sleep(300);

    const r = await rig.assertCleanStream(GUILD, "shoukaku playback");
    const rep = await rig.discord.report(GUILD, 0.1);
    const a = rep.analysis;
    const t = audio.atPacket;
    const all = audio.stepRuns(a, 0);
    const msg = `steps: ${audio.describe(all)}`;
    const glitches = audio.glitches(audio.stepRuns(a, 0));
    console.log(`# ${JSON.stringify({ packets: rep.packets, gap_max: rep.gap_max, gaps_over_40ms: rep.gaps_over_40ms, timestamp_jumps: rep.timestamp_jumps, mid_step_glitches_at_s: glitches })}`);

    // From the start: 0, 1, then 2 when the seek came (at 2.4 s).
    assert.deepEqual(audio.steps(audio.stepRuns(a, 0, t(seekAt))), [0, 1, 2], msg);
    // After the seek to 5 s (what was buffered before it plays out within ~0.2 s): step 5, then 6.
    const afterSeek = audio.steps(audio.stepRuns(a, t(seekAt) + 0.25, t(filterAt)));
    assert.equal(afterSeek[0], 5, `first step after seek(5000); ${msg}`);
    assert.ok(afterSeek.every((s) => s === 5 || s === 6), `after the seek ${afterSeek}; ${msg}`);
    // filters.volume 0.5: Lavalink's volume filter gain is tan(0.79·v), −7.60 dB here.
    const before = audio.level(a, t(seekAt) + 0.3, t(filterAt));
    const filtered = audio.level(a, t(filterAt) + 0.3, t(pauseAt));
    const wantFilter = audio.volumeFilterGainDb(0.5);
    assert.ok(Math.abs(filtered - before - wantFilter) < 1.0, `filter volume 0.5 changed the level by ${(filtered - before).toFixed(2)} dB, want ${wantFilter.toFixed(2)}`);
    // Pause keeps the position: the step before the pause continues after it.
    const beforePause = audio.steps(audio.stepRuns(a, t(pauseAt) - 0.3, t(pauseAt)), 0.1);
    const afterPause = audio.steps(audio.stepRuns(a, t(resumeAt) + 0.05, t(resumeAt) + 0.3), 0.1);
    assert.ok(beforePause.length && afterPause.length, msg);
    assert.ok(afterPause[0] - beforePause.at(-1) <= 1 && afterPause[0] >= beforePause.at(-1), `pause at step ${beforePause}, resumed at ${afterPause}; ${msg}`);
    // Player volume 50 on top: Lavalink's curve, −7.6 dB.
    const quieter = audio.level(a, t(volumeAt) + 0.3, t(volumeAt) + 1.0);
    const want = audio.volumeGainDb(50);
    const unchanged = audio.level(a, t(resumeAt) + 0.1, t(volumeAt));
    assert.ok(Math.abs(quieter - unchanged - want) < 1.0, `volume 50 changed the level by ${(quieter - unchanged).toFixed(2)} dB, want ${want.toFixed(2)}`);
    // The track played to its last step, then silence frames.
    const tail = audio.steps(audio.stepRuns(a, t(volumeAt)));
    assert.equal(tail.at(-1), 9, msg);
    assert.ok(r.silence_frames >= 5, `silence frames ${r.silence_frames}`);
});

test("plays a playlist entry from a start position and stops it", async () => {
    const flac = playlist.tracks[1];
    const started = nextEvent(player, "start", () => true, T);
    const from = await packets();
    await player.playTrack({ track: { encoded: flac.encoded }, position: 3000 });
    const [start] = await started;
    assert.equal(start.track.info.uri, flac.info.uri);
    await waitPackets(from + 60, "1.2 s of the playlist track");
    const stopped = nextEvent(player, "end", () => true, T);
    await player.stopTrack();
    const [end] = await stopped;
    assert.equal(end.reason, "stopped");
    assert.equal(end.track.info.uri, flac.info.uri);
    const rep = await rig.discord.report(GUILD, 0.1);
    const got = audio.steps(audio.stepRuns(rep.analysis, audio.atPacket(from) + 0.3));
    assert.equal(got[0], 3, `started at 3 s: ${audio.describe(audio.stepRuns(rep.analysis, audio.atPacket(from)))}`);
    assert.equal((await node.rest.getPlayer(GUILD)).track, null);
});

test("resumes its session after the connection drops; events are not lost", async () => {
    const ogg = playlist.tracks[2];
    const sessionId = node.sessionId;
    const streamsBefore = (await rig.discord.reports(GUILD)).length;
    const started = nextEvent(player, "start", () => true, T);
    await player.playTrack({ track: { encoded: ogg.encoded }, position: 8000 });
    await started;
    const from = await packets();
    await waitPackets(from + 20, "0.4 s of the last track");
    // The track ends (1.6 s left) while the bot is cut off; the node queues the TrackEndEvent.
    const ended = nextEvent(player, "end", () => true, 20_000);
    const resumed = nextEvent(shoukaku, "ready", () => true, 20_000);
    const dropAt = await packets();
    dropping = true;
    // Held, not refused: shoukaku 4.3.0 gives up on a connection that succeeds after a failed
    // attempt (see README-js.md), so its first reconnect attempt must be the one that works.
    rig.proxies.get("acoustic").dropClients({ holdMs: 2500 });
    const [, wasResumed] = await resumed;
    dropping = false;
    assert.equal(wasResumed, true, "ready.resumed");
    assert.equal(node.sessionId, sessionId, "same session id after resuming");
    const [end] = await ended;
    assert.equal(end.reason, "finished");
    assert.equal(end.track.info.uri, ogg.info.uri);
    // Voice was not touched by the drop: the same stream kept receiving audio.
    assert.equal((await rig.discord.reports(GUILD)).length, streamsBefore, "no new voice stream");
    assert.ok((await packets()) - dropAt >= 50, "audio went on while the bot was disconnected");
    const open = rig.records.filter((r) => r.kind === "ws-open" && r.status === 101);
    assert.equal(open.at(-1).sessionResumed, "true");
    assert.equal(open.at(-1).requestSessionId, sessionId);
    await rig.assertCleanStream(GUILD, "stream across the resume");
});

test("leaves the voice channel: player destroyed, voice connection closed", async () => {
    const events = (await rig.discord.events()).length;
    await shoukaku.leaveVoiceChannel(GUILD);
    const leave = connector.sent.filter((p) => p.op === 4 && p.d.guild_id === GUILD).at(-1);
    assert.equal(leave.d.channel_id, null);
    await waitFor(
        "the voice connection to close",
        async () => (await rig.discord.events(events)).some((e) => e.kind === "closed" && e.guild_id === Number(GUILD)),
        T,
    );
    assert.deepEqual(await node.rest.getPlayers(), []);
    const stats = await node.rest.stats();
    assert.equal(stats.players, 0);
    assert.equal(stats.playingPlayers, 0);
});

test("every REST response and WebSocket message matches the lavalink-protocol schemas", () => {
    assert.deepEqual(errors, [], "shoukaku reported errors");
    const counts = assertValid(rig.records, "shoukaku");
    for (const op of ["ready", "stats", "playerUpdate", "event TrackStartEvent", "event TrackEndEvent"]) {
        assert.ok(counts.wsByOp[op] > 0, `saw ${op}`);
    }
});
