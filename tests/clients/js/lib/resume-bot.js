// A bot process for the lavalink-client resume test: connects, joins voice with credentials
// handed to it by the test, plays a track, turns session resuming on, prints its session id
// and waits to be killed (a bot crash). Arguments: a JSON object
// {host, port, guildId, channelId, voice: {token, session_id, endpoint}, url}.
"use strict";

const { createManager } = require("./lavalink-client-bot");
const { BOT_ID } = require("./util");

async function main() {
    const args = JSON.parse(process.argv[2]);
    const manager = createManager({
        nodes: [{ id: "acoustic", host: args.host, port: args.port }],
        gateway: async (payload, dispatch) => {
            if (payload.op !== 4 || !payload.d.channel_id) return;
            const d = { guild_id: args.guildId, channel_id: args.channelId, user_id: BOT_ID, session_id: args.voice.session_id, self_deaf: true, self_mute: false };
            await dispatch({ op: 0, t: "VOICE_STATE_UPDATE", d });
            await dispatch({ op: 0, t: "VOICE_SERVER_UPDATE", d: { guild_id: args.guildId, token: args.voice.token, endpoint: args.voice.endpoint } });
        },
    });
    const ready = new Promise((resolve) => manager.nodeManager.once("connect", resolve));
    await manager.init({ id: BOT_ID, username: "acoustic-js-test" });
    const node = await ready;
    while (!node.sessionId) await new Promise((r) => setTimeout(r, 20));
    await node.updateSession(true, 60);
    const player = manager.createPlayer({ guildId: args.guildId, voiceChannelId: args.channelId, selfDeaf: true });
    await player.connect();
    while (!player.voice?.token) await new Promise((r) => setTimeout(r, 20));
    const res = await node.search({ query: args.url }, { id: "1" });
    const started = new Promise((resolve) => manager.on("trackStart", resolve));
    await player.queue.add(res.tracks[0]);
    await player.play();
    await started;
    process.stdout.write(`${JSON.stringify({ sessionId: node.sessionId })}\n`);
    setInterval(() => {}, 1 << 30);
}

main().catch((err) => {
    console.error(err);
    process.exit(1);
});
