// Small helpers shared by the tests: paths, waiting, timeouts.
"use strict";

const path = require("node:path");
const fs = require("node:fs");
const os = require("node:os");

const ROOT = path.resolve(__dirname, "..", "..", "..", "..");
const TARGET = process.env.CARGO_TARGET_DIR ? path.resolve(process.env.CARGO_TARGET_DIR) : path.join(ROOT, "target");
const ACOUSTIC_BIN = process.env.ACOUSTIC_BIN || path.join(TARGET, "debug", "acoustic");
const FAKE_DISCORD_BIN = process.env.FAKE_DISCORD_BIN || path.join(TARGET, "debug", "fake-discord");
const MEDIA_DIR = process.env.ACOUSTIC_MEDIA_DIR || path.join(ROOT, "tests", "media", "generated");
const PASSWORD = "youshallnotpass";
const BOT_ID = "123456789012345678";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` (sync or async) every `everyMs` until it returns a truthy value or time runs out. */
async function waitFor(what, check, timeoutMs = 10_000, everyMs = 50) {
    // Monotonic time: a wall-clock step (NTP, a paused VM) must not cut the wait short.
    const deadline = performance.now() + timeoutMs;
    let last;
    for (;;) {
        last = await check();
        if (last) return last;
        if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await sleep(everyMs);
    }
}

/** Resolves with the arguments of the first `event` on `emitter` that satisfies `pred`. */
function nextEvent(emitter, event, pred = () => true, timeoutMs = 10_000) {
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
            emitter.off(event, listener);
            reject(new Error(`timed out after ${timeoutMs} ms waiting for event ${event}`));
        }, timeoutMs);
        function listener(...args) {
            let ok = false;
            try {
                ok = pred(...args);
            } catch (e) {
                clearTimeout(timer);
                emitter.off(event, listener);
                reject(e);
                return;
            }
            if (!ok) return;
            clearTimeout(timer);
            emitter.off(event, listener);
            resolve(args);
        }
        emitter.on(event, listener);
    });
}

function tempDir(prefix) {
    return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

module.exports = {
    ROOT,
    ACOUSTIC_BIN,
    FAKE_DISCORD_BIN,
    MEDIA_DIR,
    PASSWORD,
    BOT_ID,
    sleep,
    waitFor,
    nextEvent,
    tempDir,
};
