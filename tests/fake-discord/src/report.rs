//! Per-stream receive statistics: what arrived on one SSRC, how regular it was, what failed to
//! decrypt, and the decoded audio. `StreamStats` is updated packet by packet; `StreamReport` is
//! the snapshot tests read.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::crypto::Mode;

/// How many sequence numbers are remembered to tell duplicates from late packets.
const SEEN_WINDOW: usize = 4096;
/// At most this many positions are listed for irregularities.
const MAX_LISTED: usize = 64;
/// A gap larger than this many frames is not filled with silence in the PCM.
const MAX_FILL_FRAMES: u64 = 250;

/// One Speaking (op 5) message from the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpeakingRecord {
    /// Time since the server started.
    pub at: Duration,
    pub speaking: u64,
    pub delay: Option<u64>,
    pub ssrc: u32,
}

/// A timestamp step that was not 960 per sequence step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimestampJump {
    /// Index of the packet (in arrival order) where it happened.
    pub packet_index: u64,
    pub seq_delta: u64,
    pub ts_delta: i64,
}

/// A run of missing sequence numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqGap {
    pub packet_index: u64,
    /// Sequence number expected next.
    pub expected: u16,
    /// Sequence number that arrived.
    pub got: u16,
}

/// Snapshot of one stream (one SSRC of one session).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StreamReport {
    pub guild_id: u64,
    pub user_id: u64,
    pub ssrc: u32,
    pub mode: Option<Mode>,
    /// DAVE protocol version the stream currently runs (0 = transport encryption only).
    pub dave_protocol_version: u16,
    /// Every RTP packet received for this SSRC, decryptable or not.
    pub packets: u64,
    pub bytes: u64,
    pub largest_packet: usize,
    /// Time of the first / last packet since the server started.
    pub first_packet_at: Option<Duration>,
    pub last_packet_at: Option<Duration>,
    /// First packet that was not an Opus silence frame.
    pub first_audio_at: Option<Duration>,
    /// (packets - 1) / (last - first); `None` with fewer than two packets.
    pub packets_per_second: Option<f64>,
    /// Runs of missing sequence numbers (events) and their positions.
    pub seq_gaps: u64,
    pub seq_gap_list: Vec<SeqGap>,
    /// Sequence numbers never received (net, after late arrivals filled holes).
    pub lost_packets: u64,
    pub duplicates: u64,
    /// Packets that arrived after a higher sequence number (late, not duplicate).
    pub reordered: u64,
    /// Timestamp steps that were not 960 × sequence step.
    pub timestamp_jumps: u64,
    pub timestamp_jump_list: Vec<TimestampJump>,
    /// Nonce counters that did not follow the previous one by exactly 1.
    pub nonce_discontinuities: u64,
    /// Packets whose header was not version 2 / payload type 120.
    pub bad_headers: u64,
    /// Arrival gaps between consecutive packets.
    pub gap_p50: Option<Duration>,
    pub gap_p99: Option<Duration>,
    pub gap_max: Option<Duration>,
    /// Gaps above 40 ms (two frames), counted.
    pub gaps_over_40ms: u64,
    pub transport_decrypt_failures: u64,
    /// Frames with the DAVE trailer that a group member failed to decrypt.
    pub dave_decrypt_failures: u64,
    /// Frames with the DAVE trailer that decrypted.
    pub dave_frames: u64,
    /// Non-silence frames without the DAVE trailer (plain Opus).
    pub plain_frames: u64,
    /// Plain frames that arrived while the stream was in an executed DAVE epoch with a
    /// listener able to decrypt: under DAVE these should be zero.
    pub plain_frames_while_dave: u64,
    /// DAVE frames that could not be tried because no listener shares the bot's group.
    pub dave_frames_without_member: u64,
    pub silence_frames: u64,
    /// Packet indices (arrival order) of the silence frames, first 64.
    pub silence_positions: Vec<u64>,
    pub opus_decode_errors: u64,
    /// Packets received before the client sent a Speaking message with a non-zero mask.
    pub packets_before_speaking: u64,
    /// Packets that came from another address than the one given in Select Protocol.
    pub packets_from_other_address: u64,
    /// UDP keepalives (the stream's SSRC alone) received, and when the last one came.
    pub keepalives: u64,
    pub last_keepalive_at: Option<Duration>,
    pub speaking: Vec<SpeakingRecord>,
    /// Decoded audio, 48 kHz stereo interleaved (missing packets filled with zeros).
    pub pcm: Vec<i16>,
    /// The Opus frames as they came out of decryption (transport and DAVE), in arrival order.
    pub opus_frames: Vec<Vec<u8>>,
}

impl StreamReport {
    /// Duration of the decoded audio.
    pub fn pcm_duration(&self) -> Duration {
        Duration::from_secs_f64(self.pcm.len() as f64 / 2.0 / 48_000.0)
    }

    /// Total decrypt failures, transport and DAVE.
    pub fn decrypt_failures(&self) -> u64 {
        self.transport_decrypt_failures + self.dave_decrypt_failures
    }

    /// Drops the bulky fields (PCM and Opus frames), keeping the counters.
    pub fn without_media(mut self) -> StreamReport {
        self.pcm = Vec::new();
        self.opus_frames = Vec::new();
        self
    }
}

/// Live statistics of one stream.
#[derive(Debug, Default)]
pub struct StreamStats {
    pub report: StreamReport,
    max_ext_seq: Option<u64>,
    last_ts: u32,
    last_nonce: Option<u32>,
    last_arrival: Option<Duration>,
    gaps_us: Vec<u32>,
    seen: VecDeque<u64>,
    seen_set: std::collections::HashSet<u64>,
    pcm: Vec<i16>,
    opus_frames: Vec<Vec<u8>>,
    /// Arrival times of packets that came while no Speaking was on; settled when one comes.
    unspoken: Vec<Duration>,
    pub speaking_on: bool,
    /// How many PCM samples (per channel) may still be kept.
    pub keep_pcm_samples: usize,
    pub keep_opus_frames: usize,
}

/// Where a packet falls in the sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqClass {
    /// The next one expected, or the first; `missing` frames were skipped before it.
    InOrder {
        missing: u64,
    },
    Duplicate,
    Late,
}

impl StreamStats {
    pub fn new(keep_pcm: Duration, keep_opus_frames: usize) -> StreamStats {
        StreamStats {
            keep_pcm_samples: (keep_pcm.as_secs_f64() * 48_000.0) as usize,
            keep_opus_frames,
            ..Default::default()
        }
    }

    /// Records the arrival of a packet (before decryption) and classifies its sequence number.
    pub fn on_packet(
        &mut self,
        at: Duration,
        len: usize,
        seq: u16,
        ts: u32,
        header_ok: bool,
    ) -> SeqClass {
        let r = &mut self.report;
        let index = r.packets;
        r.packets += 1;
        r.bytes += len as u64;
        r.largest_packet = r.largest_packet.max(len);
        if !header_ok {
            r.bad_headers += 1;
        }
        if r.first_packet_at.is_none() {
            r.first_packet_at = Some(at);
        }
        r.last_packet_at = Some(at);
        if let Some(prev) = self.last_arrival {
            let gap = at.saturating_sub(prev);
            self.gaps_us
                .push(gap.as_micros().min(u32::MAX as u128) as u32);
            if gap > Duration::from_millis(40) {
                r.gaps_over_40ms += 1;
            }
        }
        self.last_arrival = Some(at);
        if !self.speaking_on && self.unspoken.len() < 100_000 {
            self.unspoken.push(at);
        }

        // Extend the 16-bit sequence number to the one closest to the highest seen.
        let ext = match self.max_ext_seq {
            None => (1u64 << 32) + seq as u64,
            Some(max) => {
                let base = max & !0xffff;
                let candidates = [base.wrapping_sub(0x10000), base, base + 0x10000];
                candidates
                    .iter()
                    .map(|b| b + seq as u64)
                    .min_by_key(|c| c.abs_diff(max))
                    .expect("three candidates")
            }
        };
        let class = match self.max_ext_seq {
            None => SeqClass::InOrder { missing: 0 },
            Some(max) if ext > max => {
                let missing = ext - max - 1;
                if missing > 0 {
                    r.seq_gaps += 1;
                    r.lost_packets += missing;
                    if r.seq_gap_list.len() < MAX_LISTED {
                        r.seq_gap_list.push(SeqGap {
                            packet_index: index,
                            expected: (max + 1) as u16,
                            got: seq,
                        });
                    }
                }
                let steps = ext - max;
                let ts_delta = ts.wrapping_sub(self.last_ts) as i32 as i64;
                if ts_delta != 960 * steps as i64 {
                    r.timestamp_jumps += 1;
                    if r.timestamp_jump_list.len() < MAX_LISTED {
                        r.timestamp_jump_list.push(TimestampJump {
                            packet_index: index,
                            seq_delta: steps,
                            ts_delta,
                        });
                    }
                }
                SeqClass::InOrder { missing }
            }
            Some(_) if self.seen_set.contains(&ext) => {
                r.duplicates += 1;
                SeqClass::Duplicate
            }
            Some(_) => {
                r.reordered += 1;
                r.lost_packets = r.lost_packets.saturating_sub(1);
                SeqClass::Late
            }
        };
        if let SeqClass::InOrder { .. } = class {
            self.max_ext_seq = Some(ext);
            self.last_ts = ts;
        }
        if class != SeqClass::Duplicate {
            self.seen.push_back(ext);
            self.seen_set.insert(ext);
            if self.seen.len() > SEEN_WINDOW
                && let Some(old) = self.seen.pop_front()
            {
                self.seen_set.remove(&old);
            }
        }
        class
    }

    /// Records a Speaking message. Packets that arrived while not speaking count as "before
    /// Speaking" unless this Speaking came within 50 ms after them: the gateway message and
    /// the first packet travel on different sockets and may be seen in either order.
    pub fn on_speaking(&mut self, at: Duration, speaking: u64) {
        self.speaking_on = speaking != 0;
        if self.speaking_on {
            let early = self
                .unspoken
                .drain(..)
                .filter(|a| at.saturating_sub(*a) > Duration::from_millis(50))
                .count();
            self.report.packets_before_speaking += early as u64;
        }
    }

    /// Records the nonce counter of a packet that decrypted.
    pub fn on_nonce(&mut self, nonce: u32) {
        if let Some(prev) = self.last_nonce
            && nonce != prev.wrapping_add(1)
        {
            self.report.nonce_discontinuities += 1;
        }
        self.last_nonce = Some(nonce);
    }

    /// Records a silence frame.
    pub fn on_silence(&mut self) {
        let r = &mut self.report;
        if r.silence_positions.len() < MAX_LISTED {
            r.silence_positions.push(r.packets - 1);
        }
        r.silence_frames += 1;
    }

    /// Keeps a decrypted Opus frame.
    pub fn keep_opus(&mut self, frame: &[u8]) {
        if self.opus_frames.len() < self.keep_opus_frames {
            self.opus_frames.push(frame.to_vec());
        }
    }

    /// Appends decoded audio (interleaved stereo), preceded by `missing_frames` of zeros.
    pub fn push_pcm(&mut self, missing_frames: u64, samples: &[i16]) {
        let fill = (missing_frames.min(MAX_FILL_FRAMES) * 960 * 2) as usize;
        let room = self.keep_pcm_samples * 2 - self.pcm.len().min(self.keep_pcm_samples * 2);
        let fill = fill.min(room);
        self.pcm.extend(std::iter::repeat_n(0, fill));
        let room = room - fill;
        self.pcm
            .extend_from_slice(&samples[..samples.len().min(room)]);
    }

    /// The report with derived figures (rate, percentiles) filled in.
    pub fn snapshot(&self, with_media: bool) -> StreamReport {
        let mut r = self.report.clone();
        r.packets_before_speaking += self.unspoken.len() as u64;
        if with_media {
            r.pcm = self.pcm.clone();
            r.opus_frames = self.opus_frames.clone();
        }
        if let (Some(a), Some(b)) = (r.first_packet_at, r.last_packet_at)
            && r.packets > 1
            && b > a
        {
            r.packets_per_second = Some((r.packets - 1) as f64 / (b - a).as_secs_f64());
        }
        if !self.gaps_us.is_empty() {
            let mut g = self.gaps_us.clone();
            g.sort_unstable();
            r.gap_p50 = Some(Duration::from_micros(percentile(&g, 0.50) as u64));
            r.gap_p99 = Some(Duration::from_micros(percentile(&g, 0.99) as u64));
            r.gap_max = Some(Duration::from_micros(*g.last().expect("non-empty") as u64));
        }
        r
    }

    /// Clears every counter and the kept media; the stream's identity stays.
    pub fn reset(&mut self) {
        let keep = StreamReport {
            guild_id: self.report.guild_id,
            user_id: self.report.user_id,
            ssrc: self.report.ssrc,
            mode: self.report.mode,
            dave_protocol_version: self.report.dave_protocol_version,
            ..Default::default()
        };
        let speaking_on = self.speaking_on;
        *self = StreamStats {
            report: keep,
            keep_pcm_samples: self.keep_pcm_samples,
            keep_opus_frames: self.keep_opus_frames,
            ..Default::default()
        };
        self.speaking_on = speaking_on;
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    assert!(!sorted.is_empty());
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn feed(stats: &mut StreamStats, seqs: &[(u16, u32)]) -> Vec<SeqClass> {
        seqs.iter()
            .enumerate()
            .map(|(i, &(s, t))| stats.on_packet(ms(20 * i as u64), 100, s, t, true))
            .collect()
    }

    #[test]
    fn continuous_stream_has_no_irregularities() {
        let mut s = StreamStats::new(ms(1000), 10);
        s.speaking_on = true;
        let pkts: Vec<_> = (0..100u32)
            .map(|i| (65500u16.wrapping_add(i as u16), 1000 + 960 * i))
            .collect();
        feed(&mut s, &pkts);
        let r = s.snapshot(false);
        assert_eq!(r.packets, 100);
        assert_eq!(
            (r.seq_gaps, r.lost_packets, r.duplicates, r.reordered),
            (0, 0, 0, 0)
        );
        assert_eq!(r.timestamp_jumps, 0);
        assert_eq!(r.packets_before_speaking, 0);
        let pps = r.packets_per_second.unwrap();
        assert!((pps - 50.0).abs() < 1e-9, "{pps}");
        assert_eq!(r.gap_p50, Some(ms(20)));
        assert_eq!(r.gap_max, Some(ms(20)));
    }

    #[test]
    fn gaps_duplicates_and_reorders_are_told_apart() {
        let mut s = StreamStats::new(ms(1000), 10);
        // 1, 2, 5 (gap of 3,4), 4 (late), 5 (dup), 6
        let classes = feed(
            &mut s,
            &[(1, 0), (2, 960), (5, 3840), (4, 2880), (5, 3840), (6, 4800)],
        );
        assert_eq!(
            classes,
            vec![
                SeqClass::InOrder { missing: 0 },
                SeqClass::InOrder { missing: 0 },
                SeqClass::InOrder { missing: 2 },
                SeqClass::Late,
                SeqClass::Duplicate,
                SeqClass::InOrder { missing: 0 },
            ]
        );
        let r = s.snapshot(false);
        assert_eq!(r.seq_gaps, 1);
        assert_eq!(r.lost_packets, 1); // 3 never came, 4 came late
        assert_eq!(r.reordered, 1);
        assert_eq!(r.duplicates, 1);
        assert_eq!(
            r.timestamp_jumps, 0,
            "ts followed 960 per seq step across the gap"
        );
        assert_eq!(
            r.seq_gap_list,
            vec![SeqGap {
                packet_index: 2,
                expected: 3,
                got: 5
            }]
        );
        assert_eq!(r.packets_before_speaking, 6);
    }

    #[test]
    fn speaking_right_after_the_first_packet_is_not_late() {
        let mut s = StreamStats::new(ms(1000), 10);
        s.on_packet(ms(1000), 10, 1, 0, true);
        s.on_speaking(ms(1010), 1);
        s.on_packet(ms(1020), 10, 2, 960, true);
        assert_eq!(s.snapshot(false).packets_before_speaking, 0);
        s.on_speaking(ms(1030), 0);
        s.on_packet(ms(1040), 10, 3, 1920, true);
        s.on_speaking(ms(2000), 1);
        assert_eq!(s.snapshot(false).packets_before_speaking, 1);
    }

    #[test]
    fn timestamp_jump_is_reported() {
        let mut s = StreamStats::new(ms(1000), 10);
        feed(&mut s, &[(1, 0), (2, 960), (3, 960 + 480)]);
        let r = s.snapshot(false);
        assert_eq!(r.timestamp_jumps, 1);
        assert_eq!(r.timestamp_jump_list[0].ts_delta, 480);
    }

    #[test]
    fn percentiles_of_arrival_gaps() {
        let mut s = StreamStats::new(ms(1000), 10);
        let mut t = 0;
        // 99 gaps of 20 ms and one of 60 ms
        for i in 0..101u16 {
            s.on_packet(ms(t), 10, i, 960 * i as u32, true);
            t += if i == 50 { 60 } else { 20 };
        }
        let r = s.snapshot(false);
        assert_eq!(r.gap_p50, Some(ms(20)));
        assert_eq!(r.gap_p99, Some(ms(20)));
        assert_eq!(r.gap_max, Some(ms(60)));
        assert_eq!(r.gaps_over_40ms, 1);
        assert_eq!(percentile(&[1, 2, 3, 4], 0.5), 2);
        assert_eq!(percentile(&[1, 2, 3, 4], 0.99), 4);
    }

    #[test]
    fn nonce_and_pcm_bookkeeping() {
        let mut s = StreamStats::new(ms(20), 1);
        s.on_nonce(u32::MAX);
        s.on_nonce(0);
        s.on_nonce(2);
        assert_eq!(s.report.nonce_discontinuities, 1);
        s.keep_opus(&[1]);
        s.keep_opus(&[2]);
        // 20 ms kept at most: one frame of fill, then nothing more fits
        s.push_pcm(1, &[5; 1920]);
        let r = s.snapshot(true);
        assert_eq!(r.opus_frames, vec![vec![1]]);
        assert_eq!(r.pcm.len(), 1920);
        assert!(r.pcm.iter().all(|&v| v == 0));
        s.reset();
        let r = s.snapshot(true);
        assert_eq!(r.packets, 0);
        assert!(r.pcm.is_empty());
    }
}
