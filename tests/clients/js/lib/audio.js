// Reading the test staircase back from what reached the fake Discord server. The fake server
// decrypts and decodes every packet and measures each window of the decoded audio (pitch from
// zero crossings, RMS level); here those windows become "which second of the staircase is this"
// (second k of the source is a 200 + 100·k Hz tone), so position, seeks, pitch and level changes
// can be checked against what the client asked for.
//
// Times are seconds into the guild's current stream: packet n of the stream starts at n × 20 ms
// of its decoded audio (a lost packet is filled with 20 ms of silence), so a packet count read
// when the client acted marks that moment in the audio.
"use strict";

const FRAME_S = 0.02;
const SILENT_DBFS = -45;

/** Staircase step of a frequency (pitch-shifted by `factor`), or null when it is no step. */
function stepOf(hz, factor = 1) {
    if (!hz) return null;
    const base = hz / factor;
    const k = Math.round((base - 200) / 100);
    if (k < 0 || k > 9) return null;
    return Math.abs(base - (200 + 100 * k)) <= 6 ? k : null;
}

/** Windows of `analysis` whose start lies in [fromS, toS). */
function windows(analysis, fromS, toS = Infinity) {
    return analysis.filter((w) => w.start_s >= fromS - 1e-9 && w.start_s < toS - 1e-9);
}

/**
 * Runs of equal readings over [fromS, toS): `[{step, seconds, at}]` where step is a staircase
 * step, "silence", or "?" (sound that is no step at this pitch factor).
 */
function stepRuns(analysis, fromS, toS = Infinity, factor = 1) {
    const runs = [];
    for (const w of windows(analysis, fromS, toS)) {
        const silent = w.rms_dbfs < SILENT_DBFS;
        const step = silent ? "silence" : (stepOf(w.frequency_hz, factor) ?? "?");
        const last = runs[runs.length - 1];
        const len = windowLength(analysis);
        if (last && last.step === step) last.seconds = round(last.seconds + len);
        else runs.push({ step, seconds: round(len), at: round(w.start_s) });
    }
    return runs;
}

function windowLength(analysis) {
    return analysis.length > 1 ? analysis[1].start_s - analysis[0].start_s : 0.1;
}

function round(x) {
    return Math.round(x * 1000) / 1000;
}

/** The step runs as text, for assertion messages: "0×1.0 1×1.0 silence×0.1 …". */
function describe(runs) {
    return runs.map((r) => `${r.step}×${r.seconds}@${r.at}`).join(" ");
}

/**
 * The sounding steps in order: runs of at least `minS` seconds, a step interrupted by a short
 * unreadable stretch counted once.
 */
function steps(runs, minS = 0.25) {
    const out = [];
    for (const r of runs) {
        if (typeof r.step !== "number" || r.seconds < minS - 1e-9) continue;
        if (out[out.length - 1] !== r.step) out.push(r.step);
    }
    return out;
}

/**
 * Unreadable windows in the middle of a step (the same step before and after): a click or a
 * discontinuity in the audio, not a step boundary. Returns their start times.
 */
function glitches(runs) {
    const out = [];
    for (let i = 1; i + 1 < runs.length; i++) {
        if (runs[i].step === "?" && typeof runs[i - 1].step === "number" && runs[i - 1].step === runs[i + 1].step) out.push(runs[i].at);
    }
    return out;
}

/** Seconds of windows in `runs` that read as no step ("?"), for glitch accounting. */
function unreadable(runs) {
    return round(runs.filter((r) => r.step === "?").reduce((s, r) => s + r.seconds, 0));
}

/** Mean RMS level (dBFS) of the non-silent windows in [fromS, toS). */
function level(analysis, fromS, toS) {
    const ws = windows(analysis, fromS, toS).filter((w) => w.rms_dbfs >= SILENT_DBFS);
    if (!ws.length) return null;
    // Average power, not dB.
    const p = ws.reduce((s, w) => s + 10 ** (w.rms_dbfs / 10), 0) / ws.length;
    return 10 * Math.log10(p);
}

/** Seconds of audio before packet `n` of the stream. */
function atPacket(n) {
    return n * FRAME_S;
}

/** Lavalink's player volume curve: the gain (dB) of volume `v` (0..1000), as the node applies it. */
function volumeGainDb(v) {
    const m = v <= 150 ? Math.trunc(Math.tan(v * 0.0079) * 10000) : Math.trunc((24621 * v) / 150);
    return 20 * Math.log10(m / 10000);
}

/** The gain (dB) of Lavalink's `volume` filter at `v` (0..5): tan(0.79·v) up to 1.5, 1.6408·v above. */
function volumeFilterGainDb(v) {
    const k = v <= 1.5 ? Math.tan(0.79 * v) : 1.6408 * v;
    return 20 * Math.log10(k);
}

module.exports = {
    volumeFilterGainDb,
    unreadable,
    glitches, stepOf, stepRuns, steps, describe, level, atPacket, volumeGainDb, windows, SILENT_DBFS };
