// Child processes started by the tests: every one is registered here and killed when the test
// process exits, so a failing test never leaves a node or a fake server behind.
"use strict";

const { spawn } = require("node:child_process");

const children = new Set();

function track(child) {
    children.add(child);
    child.once("exit", () => children.delete(child));
    return child;
}

function killAll() {
    for (const child of children) {
        try {
            child.kill("SIGKILL");
        } catch {
            // already gone
        }
    }
}

process.once("exit", killAll);
for (const sig of ["SIGINT", "SIGTERM"]) {
    process.once(sig, () => {
        killAll();
        process.exit(130);
    });
}

function start(cmd, args, options) {
    return track(spawn(cmd, args, options));
}

/** Resolves with the exit code/signal once `child` has exited (at once if it already has). */
function exited(child) {
    if (child.exitCode !== null || child.signalCode !== null) {
        return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
    }
    return new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
}

module.exports = { start, exited, killAll };
