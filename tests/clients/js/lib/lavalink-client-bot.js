// A lavalink-client LavalinkManager set up as a bot sets it up, with the Discord gateway
// replaced by a function that answers op 4 (voice state update) packets.
"use strict";

const { LavalinkManager } = require("lavalink-client");
const { BOT_ID, PASSWORD } = require("./util");

/**
 * @param {object} opts
 * @param {Array<{id: string, host: string, port: number, sessionId?: string}>} opts.nodes
 * @param {(payload: object, dispatch: (packet: object) => Promise<void>) => Promise<void>} opts.gateway
 *   answers a gateway payload the bot sends (op 4) by dispatching Discord's voice packets
 * @param {object} [opts.extra]  more LavalinkManager options
 */
function createManager({ nodes, gateway, extra = {} }) {
    const sent = [];
    let manager;
    manager = new LavalinkManager({
        nodes: nodes.map((n) => ({
            id: n.id,
            host: n.host,
            port: n.port,
            authorization: PASSWORD,
            secure: false,
            retryAmount: 30,
            retryDelay: 1000,
            // lavalink-client checks its default search platform (ytsearch) against the node's
            // /v4/info sourceManagers before every search and node move; Acoustic lists only
            // `http` there (no YouTube source), so the check would refuse even URL loads.
            autoChecks: { sourcesValidations: false },
            ...(n.sessionId ? { sessionId: n.sessionId } : {}),
        })),
        // Where a bot calls its Discord library (guild.shard.send(payload)).
        sendToShard: (guildId, payload) => {
            sent.push(payload);
            gateway(payload, (packet) => manager.sendRawData(packet)).catch((err) => manager.emit("debug", "gateway", { error: err }));
        },
        client: { id: BOT_ID, username: "acoustic-js-test" },
        autoSkip: true,
        playerOptions: {
            onDisconnect: { autoReconnect: false, destroyPlayer: false },
            onEmptyQueue: { destroyAfterMs: undefined },
        },
        ...extra,
    });
    manager.sentToShard = sent;
    return manager;
}

module.exports = { createManager };
