// One Acoustic node as a child process: its own application.yml in a temporary folder, a free
// port chosen by the node (port 0; the address is read from its "listening on" log line), and
// SSL_CERT_FILE pointing at the fake Discord server's CA so that the node trusts its wss://.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const readline = require("node:readline");
const procs = require("./procs");
const { ACOUSTIC_BIN, PASSWORD, tempDir } = require("./util");

class AcousticNode {
    /**
     * @param {object} opts
     * @param {string} opts.name  label for logs
     * @param {string} opts.caFile  CA certificate of the fake Discord server
     * @param {string} [opts.serverYaml]  extra lines under `lavalink.server:` (4-space indented)
     */
    static async start({ name, caFile, serverYaml = "" }) {
        const dir = tempDir(`acoustic-js-node-${name}-`);
        const config = path.join(dir, "application.yml");
        fs.writeFileSync(
            config,
            `server:\n  port: 0\n  address: 127.0.0.1\nlavalink:\n  server:\n    password: "${PASSWORD}"\n${serverYaml}`,
        );
        const logPath = path.join(dir, "node.log");
        const log = fs.createWriteStream(logPath);
        const child = procs.start(ACOUSTIC_BIN, ["--config", config], {
            cwd: dir,
            env: { ...process.env, SSL_CERT_FILE: caFile, RUST_LOG: process.env.ACOUSTIC_LOG || "info" },
            stdio: ["ignore", "pipe", "pipe"],
        });
        const node = new AcousticNode(name, child, dir, logPath);
        const addr = await new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`node ${name} did not start; log in ${logPath}`)), 30_000);
            child.once("error", (err) => {
                clearTimeout(timer);
                reject(new Error(`node ${name}: ${err.message} (build it: cargo build --bin acoustic)`));
            });
            child.once("exit", (code, signal) => {
                clearTimeout(timer);
                reject(new Error(`node ${name} exited (${code ?? signal}) before listening; log in ${logPath}`));
            });
            for (const stream of [child.stdout, child.stderr]) {
                readline.createInterface({ input: stream }).on("line", (line) => {
                    log.write(`${line}\n`);
                    node.lines.push(line);
                    if (process.env.ACOUSTIC_TEST_LOG) console.error(`[${name}] ${line}`);
                    const m = /listening on (\S+)/.exec(line);
                    if (m) {
                        clearTimeout(timer);
                        resolve(m[1]);
                    }
                });
            }
        });
        const [host, port] = [addr.slice(0, addr.lastIndexOf(":")), Number(addr.slice(addr.lastIndexOf(":") + 1))];
        node.host = host;
        node.port = port;
        return node;
    }

    constructor(name, child, dir, logPath) {
        this.name = name;
        this.child = child;
        this.dir = dir;
        this.logPath = logPath;
        this.lines = [];
    }

    get url() {
        return `http://${this.host}:${this.port}`;
    }

    /** SIGKILL: the node dies at once, as in a crash or an OOM kill. */
    async kill() {
        const gone = procs.exited(this.child);
        this.child.kill("SIGKILL");
        await gone;
    }

    async stop() {
        if (this.child.exitCode !== null || this.child.signalCode !== null) return;
        const gone = procs.exited(this.child);
        this.child.kill("SIGTERM");
        const timer = setTimeout(() => this.child.kill("SIGKILL"), 3000);
        await gone;
        clearTimeout(timer);
    }
}

module.exports = { AcousticNode };
