// A long version of the test staircase for tests that need a track playing for minutes:
// second s is a 200 + 100·(s mod 10) Hz sine at amplitude 0.5, 48 kHz mono 16-bit WAV. Every
// step is a whole number of hertz, so each second starts at phase 0 (no clicks).
"use strict";

const fs = require("node:fs");
const path = require("node:path");

function writeLongStaircase(dir, seconds) {
    const rate = 48_000;
    const n = rate * seconds;
    const buf = Buffer.alloc(44 + n * 2);
    buf.write("RIFF", 0);
    buf.writeUInt32LE(36 + n * 2, 4);
    buf.write("WAVE", 8);
    buf.write("fmt ", 12);
    buf.writeUInt32LE(16, 16);
    buf.writeUInt16LE(1, 20); // PCM
    buf.writeUInt16LE(1, 22); // mono
    buf.writeUInt32LE(rate, 24);
    buf.writeUInt32LE(rate * 2, 28);
    buf.writeUInt16LE(2, 32);
    buf.writeUInt16LE(16, 34);
    buf.write("data", 36);
    buf.writeUInt32LE(n * 2, 40);
    for (let i = 0; i < n; i++) {
        const s = Math.floor(i / rate);
        const hz = 200 + 100 * (s % 10);
        const v = Math.round(0.5 * 32767 * Math.sin((2 * Math.PI * hz * (i % rate)) / rate));
        buf.writeInt16LE(v, 44 + i * 2);
    }
    const file = path.join(dir, `long-staircase-${seconds}s.wav`);
    fs.writeFileSync(file, buf);
    return path.basename(file);
}

module.exports = { writeLongStaircase };
