//! The pacer: one thread that, on absolute 20 ms deadlines, takes one Opus frame from every
//! player with a ready transport, DAVE-encrypts it, transport-encrypts it and sends it.
//!
//! Nothing in the tick allocates or waits on a lock shared with request handlers:
//! registrations arrive through a bounded lock-free channel drained at the start of a tick;
//! buffers are allocated once per player (at registration) or once per thread; the transport
//! is read through `ArcSwapOption`; speaking requests and retired players leave through a
//! lock-free single-producer ring to a helper thread (the "mail" thread), which forwards the
//! requests to the gateway tasks and drops what the pacer no longer needs. The only lock the
//! pacer takes is a connection's DAVE cell, shared with that connection's gateway task alone;
//! a contended cell is skipped on the first pass and retried after every other player.
//!
//! Speaking: before a player's first packet the pacer asks its gateway task to send op 5 and
//! holds the frame until the task confirms; when audio stops it sends five Opus silence
//! frames, then asks for `speaking: 0`.
//!
//! Keepalive: after 5 s without a packet on a connection (paused, stopped, between tracks)
//! the pacer sends a UDP keepalive, and again every 5 s while it stays quiet.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::crypto::{NONCE_SUFFIX_LEN, TAG_LEN};
use super::dave::{FramePrep, MediaMode};
use super::rtp::{OPUS_SILENCE_FRAME, RTP_HEADER_LEN, RtpStream, keepalive};
use super::transport::{Transport, VoiceSlot};
use super::{FrameOutcome, FrameSource, MAX_OPUS_PACKET};

/// The frame period.
pub const FRAME_PERIOD: Duration = Duration::from_millis(20);
/// Silence frames sent when audio stops, before `speaking: 0`.
pub const SILENCE_FRAMES: u8 = 5;
/// Room DAVE needs around a frame (tag, nonce, ranges, size byte, marker, padding).
const DAVE_OVERHEAD: usize = 8 + 1 + 2 + 64;
/// The largest packet we build.
const PACKET_MAX: usize =
    RTP_HEADER_LEN + MAX_OPUS_PACKET + DAVE_OVERHEAD + TAG_LEN + NONCE_SUFFIX_LEN;
/// If the pacer falls this far behind (e.g. the machine was suspended) it drops the missed
/// ticks instead of bursting them out.
const MAX_CATCH_UP: Duration = Duration::from_millis(200);
/// On the second pass a contended DAVE cell is waited for until this long before the next
/// deadline; after that its frame waits for the next tick.
const SECOND_PASS_MARGIN: Duration = Duration::from_millis(4);
/// How long audio waits for a DAVE send key before it is consumed and dropped instead.
const KEYLESS_HOLD_TICKS: u32 = 50;
/// Ticks without a packet before a UDP keepalive is sent (5 s).
const KEEPALIVE_TICKS: u32 = 250;
/// Capacity of the pacer → mail thread ring.
const NOTE_CAPACITY: usize = 16 * 1024;

/// Messages to the pacer.
pub(crate) enum PacerCommand {
    Register {
        key: u64,
        slot: Arc<VoiceSlot>,
        source: Box<dyn FrameSource>,
    },
    Unregister {
        key: u64,
    },
}

/// Messages from the pacer to the mail thread.
enum PacerNote {
    /// Ask the transport's gateway task to send op 5 with this request value.
    Speaking {
        transport: Arc<Transport>,
        value: u32,
    },
    /// A player the pacer let go of; dropped on the mail thread.
    Retired(Entry),
}

/// The pacer's counters.
#[derive(Debug, Default)]
pub(crate) struct PacerStats {
    pub ticks: AtomicU64,
    /// Ticks that started more than 5 ms after their deadline.
    pub late_ticks: AtomicU64,
    /// Ticks dropped after falling more than 200 ms behind.
    pub skipped_ticks: AtomicU64,
    pub max_lateness_us: AtomicU64,
    /// Time the last tick spent working, in microseconds.
    pub last_tick_work_us: AtomicU64,
    /// CPU time the pacer thread has used, in microseconds (wall time above includes any
    /// time the OS gave to other threads).
    pub cpu_us: AtomicU64,
    pub packets_sent: AtomicU64,
    pub send_errors: AtomicU64,
    /// UDP keepalives sent on quiet connections.
    pub keepalives_sent: AtomicU64,
    /// Frames whose DAVE cell was busy on the first pass (retried after the other players).
    pub dave_deferred: AtomicU64,
    /// Of those, frames still blocked on the second pass (sent one tick late).
    pub dave_late: AtomicU64,
    pub players: AtomicUsize,
}

/// What the threads share with the [`super::VoiceContext`].
#[derive(Default)]
pub(crate) struct PacerShared {
    pub stop: AtomicBool,
    pub stats: PacerStats,
}

/// Handles to the pacer and mail threads.
pub(crate) struct PacerThreads {
    pub shared: Arc<PacerShared>,
    mail: Thread,
    _pacer: JoinHandle<()>,
    _mail: JoinHandle<()>,
}

impl PacerThreads {
    /// Starts the pacer and the mail thread.
    pub fn spawn(commands: Receiver<PacerCommand>) -> std::io::Result<Self> {
        let shared = Arc::new(PacerShared::default());
        let (producer, mut consumer) = rtrb::RingBuffer::<PacerNote>::new(NOTE_CAPACITY);
        let mail_shared = shared.clone();
        let mail = thread::Builder::new()
            .name("voice-mail".into())
            .spawn(move || {
                loop {
                    while let Ok(note) = consumer.pop() {
                        match note {
                            PacerNote::Speaking { transport, value } => {
                                // The gateway task may be gone; then nobody needs the answer.
                                let _ = transport.speaking_tx.send(value);
                            }
                            PacerNote::Retired(entry) => drop(entry),
                        }
                    }
                    if mail_shared.stop.load(Ordering::Acquire) && consumer.is_abandoned() {
                        break;
                    }
                    thread::park_timeout(Duration::from_millis(500));
                }
            })?;
        let mail_thread = mail.thread().clone();
        let pacer_shared = shared.clone();
        let pacer_mail = mail_thread.clone();
        let pacer = thread::Builder::new()
            .name("voice-pacer".into())
            .spawn(move || {
                let mut p = Pacer::new(commands, producer, pacer_mail, pacer_shared);
                p.run();
            })?;
        Ok(PacerThreads {
            shared,
            mail: mail_thread,
            _pacer: pacer,
            _mail: mail,
        })
    }

    /// Asks both threads to stop (without waiting for them).
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        self.mail.unpark();
    }
}

/// One registered player.
struct Entry {
    key: u64,
    slot: Arc<VoiceSlot>,
    source: Box<dyn FrameSource>,
    frame: Box<[u8; MAX_OPUS_PACKET]>,
    /// Length of a frame taken from the source but not sent yet (0: none).
    held: usize,
    stream: Option<StreamState>,
}

/// Per-transport sending state, reset when the slot's transport changes.
struct StreamState {
    transport_id: u64,
    rtp: RtpStream,
    /// The last speaking request: `(n << 1) | on`.
    speak_value: u32,
    /// The request could not be queued yet (ring full).
    speak_unsent: bool,
    silence_left: u8,
    /// The current speaking request was acknowledged on an earlier tick: audio may flow.
    /// (One tick of lead after op 5 went out gives the server time to read it before the
    /// first packet arrives.)
    speaking_live: bool,
    /// Consecutive ticks without a DAVE send key.
    keyless_ticks: u32,
    /// Ticks since the last packet (voice or keepalive) left on this transport.
    quiet_ticks: u32,
}

impl StreamState {
    fn wants_speaking(&self) -> bool {
        self.speak_value & 1 == 1
    }

    fn speaking_confirmed(&self, t: &Transport) -> bool {
        self.wants_speaking() && t.speaking_ack.load(Ordering::Acquire) == self.speak_value
    }

    /// Whether audio may be sent this tick; notes a fresh acknowledgement for the next one.
    fn may_send_audio(&mut self, t: &Transport) -> bool {
        if self.speaking_live {
            return true;
        }
        if self.speaking_confirmed(t) {
            self.speaking_live = true;
        }
        false
    }

    /// Starts a new speaking request.
    fn request_speaking(&mut self, on: bool) {
        self.speak_value = next_request(self.speak_value, on);
        self.speaking_live = false;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    Done,
    /// The DAVE cell was busy; retry this player after the others.
    Deferred,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    Ok,
    Contended,
    Failed,
}

/// Per-thread buffers and outlets.
struct Io {
    packet: Box<[u8; PACKET_MAX]>,
    dave: Vec<u8>,
    notes: rtrb::Producer<PacerNote>,
    notes_pushed: bool,
    rng: StdRng,
    stats: Arc<PacerShared>,
}

struct Pacer {
    commands: Receiver<PacerCommand>,
    entries: Vec<Entry>,
    deferred: Vec<usize>,
    io: Io,
    mail: Thread,
}

impl Pacer {
    fn new(
        commands: Receiver<PacerCommand>,
        notes: rtrb::Producer<PacerNote>,
        mail: Thread,
        shared: Arc<PacerShared>,
    ) -> Self {
        Pacer {
            commands,
            entries: Vec::with_capacity(256),
            deferred: Vec::with_capacity(256),
            io: Io {
                packet: Box::new([0u8; PACKET_MAX]),
                dave: Vec::with_capacity(MAX_OPUS_PACKET + DAVE_OVERHEAD + 64),
                notes,
                notes_pushed: false,
                rng: StdRng::from_os_rng(),
                stats: shared,
            },
            mail,
        }
    }

    fn run(&mut self) {
        let start = Instant::now();
        let mut tick: u64 = 0;
        loop {
            if self.io.stats.stop.load(Ordering::Acquire) {
                break;
            }
            let deadline = start + FRAME_PERIOD * tick as u32;
            let now = Instant::now();
            if deadline > now {
                thread::sleep(deadline - now);
            }
            let began = Instant::now();
            let lateness = began.saturating_duration_since(deadline);
            let stats = &self.io.stats.stats;
            if lateness > MAX_CATCH_UP {
                let behind = (lateness.as_micros() / FRAME_PERIOD.as_micros()) as u64;
                stats.skipped_ticks.fetch_add(behind, Ordering::Relaxed);
                tick += behind;
            }
            if lateness > Duration::from_millis(5) {
                stats.late_ticks.fetch_add(1, Ordering::Relaxed);
            }
            stats
                .max_lateness_us
                .fetch_max(lateness.as_micros() as u64, Ordering::Relaxed);

            self.drain_commands();
            let next_deadline = start + FRAME_PERIOD * (tick + 1) as u32;
            self.tick(next_deadline);
            if self.io.notes_pushed {
                self.io.notes_pushed = false;
                self.mail.unpark();
            }
            let stats = &self.io.stats.stats;
            stats.ticks.fetch_add(1, Ordering::Relaxed);
            stats
                .last_tick_work_us
                .store(began.elapsed().as_micros() as u64, Ordering::Relaxed);
            if let Some(cpu) = thread_cpu_time() {
                stats
                    .cpu_us
                    .store(cpu.as_micros() as u64, Ordering::Relaxed);
            }
            tick += 1;
        }
    }

    fn drain_commands(&mut self) {
        loop {
            match self.commands.try_recv() {
                Ok(PacerCommand::Register { key, slot, source }) => {
                    if self.entries.len() == self.entries.capacity() {
                        // Growth happens only here, when a player joins, never per frame.
                        self.entries.reserve(self.entries.len());
                        self.deferred
                            .reserve(self.entries.capacity() - self.deferred.len());
                    }
                    self.entries.push(Entry {
                        key,
                        slot,
                        source,
                        frame: Box::new([0u8; MAX_OPUS_PACKET]),
                        held: 0,
                        stream: None,
                    });
                }
                Ok(PacerCommand::Unregister { key }) => {
                    if let Some(i) = self.entries.iter().position(|e| e.key == key) {
                        let entry = self.entries.swap_remove(i);
                        // Let the mail thread run the player's destructor.
                        if let Err(rtrb::PushError::Full(PacerNote::Retired(entry))) =
                            self.io.notes.push(PacerNote::Retired(entry))
                        {
                            drop(entry);
                        }
                        self.io.notes_pushed = true;
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.io.stats.stop.store(true, Ordering::Release);
                    break;
                }
            }
        }
        self.io
            .stats
            .stats
            .players
            .store(self.entries.len(), Ordering::Relaxed);
    }

    fn tick(&mut self, next_deadline: Instant) {
        self.deferred.clear();
        for i in 0..self.entries.len() {
            if self.io.service(&mut self.entries[i], None) == Service::Deferred {
                self.deferred.push(i);
            }
        }
        let wait_until = next_deadline
            .checked_sub(SECOND_PASS_MARGIN)
            .unwrap_or(next_deadline);
        for &i in &self.deferred {
            // A frame still contended after this waits in `held` for the next tick.
            let _ = self.io.service(&mut self.entries[i], Some(wait_until));
        }
    }
}

impl Io {
    /// Serves one player for this tick. `retry_until` is set on the second pass.
    fn service(&mut self, e: &mut Entry, retry_until: Option<Instant>) -> Service {
        let guard = e.slot.transport.load();
        let Some(t) = guard.as_ref() else {
            e.stream = None;
            return Service::Done;
        };
        if e.stream.as_ref().map(|s| s.transport_id) != Some(t.id) {
            e.stream = Some(StreamState {
                transport_id: t.id,
                rtp: RtpStream::new_random(t.ssrc, &mut self.rng),
                speak_value: 0,
                speak_unsent: false,
                silence_left: 0,
                speaking_live: false,
                keyless_ticks: 0,
                quiet_ticks: 0,
            });
        }
        let s = e.stream.as_mut().expect("just set");
        s.quiet_ticks = s.quiet_ticks.saturating_add(1);
        if s.speak_unsent {
            self.push_speaking(t, s);
        }
        // A DAVE call without a send key: hold the audio briefly (the key normally follows
        // within a round trip or two), then consume and drop it as libdave does, so the
        // player's position keeps moving while we are, e.g., the only member of the call.
        let no_key = t.dave.mode() == MediaMode::Pending;
        if no_key {
            s.keyless_ticks = s.keyless_ticks.saturating_add(1);
            if s.keyless_ticks <= KEYLESS_HOLD_TICKS {
                return Service::Done;
            }
        } else {
            s.keyless_ticks = 0;
        }
        let closing = t.closing.load(Ordering::Acquire);
        if closing {
            e.held = 0;
        } else if e.held == 0 && retry_until.is_none() {
            match e.source.next_frame(&mut e.frame) {
                FrameOutcome::Frame(n) if n > 0 && n <= MAX_OPUS_PACKET => e.held = n,
                FrameOutcome::Frame(_) | FrameOutcome::Missing => e.slot.count_nulled(),
                FrameOutcome::Idle => {}
            }
        }
        if no_key && e.held > 0 {
            e.held = 0;
            e.slot.count_missed();
        }

        if e.held > 0 {
            if !s.may_send_audio(t) {
                if !s.wants_speaking() {
                    s.request_speaking(true);
                    self.push_speaking(t, s);
                }
                e.slot.count_missed();
                return Service::Done;
            }
            match self.send_media(t, s, &e.frame[..e.held], retry_until) {
                Sent::Ok => {
                    e.held = 0;
                    s.silence_left = SILENCE_FRAMES;
                    e.slot.count_sent();
                }
                Sent::Contended if retry_until.is_none() => {
                    self.stats
                        .stats
                        .dave_deferred
                        .fetch_add(1, Ordering::Relaxed);
                    return Service::Deferred;
                }
                Sent::Contended => {
                    self.stats.stats.dave_late.fetch_add(1, Ordering::Relaxed);
                    e.slot.count_missed();
                }
                Sent::Failed => {
                    e.held = 0;
                    e.slot.count_missed();
                }
            }
            return Service::Done;
        }

        // No audio this tick.
        if s.wants_speaking() {
            if s.silence_left > 0 {
                if s.speaking_live {
                    let _ = self.send_packet(t, s, &OPUS_SILENCE_FRAME);
                }
                s.silence_left -= 1;
            } else {
                // One tick after the last silence frame, so it is not overtaken by op 5.
                s.request_speaking(false);
                self.push_speaking(t, s);
            }
        }
        if closing && !s.wants_speaking() {
            t.drained.store(true, Ordering::Release);
        } else if s.quiet_ticks >= KEEPALIVE_TICKS {
            s.quiet_ticks = 0;
            if t.socket.send(&keepalive(t.ssrc)).is_ok() {
                self.stats
                    .stats
                    .keepalives_sent
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        Service::Done
    }

    fn send_media(
        &mut self,
        t: &Transport,
        s: &mut StreamState,
        frame: &[u8],
        wait_until: Option<Instant>,
    ) -> Sent {
        match t.dave.prepare_frame(frame, &mut self.dave, wait_until) {
            FramePrep::Plain => self.send_packet(t, s, frame),
            FramePrep::Encrypted => {
                let dave = std::mem::take(&mut self.dave);
                let r = self.send_packet(t, s, &dave);
                self.dave = dave;
                r
            }
            FramePrep::NotReady => Sent::Failed,
            FramePrep::Contended => Sent::Contended,
        }
    }

    /// Builds, seals and sends one RTP packet carrying `payload`.
    fn send_packet(&mut self, t: &Transport, s: &mut StreamState, payload: &[u8]) -> Sent {
        let n = payload.len();
        if RTP_HEADER_LEN + n + TAG_LEN + NONCE_SUFFIX_LEN > PACKET_MAX {
            return Sent::Failed;
        }
        let header: &mut [u8; RTP_HEADER_LEN] = (&mut self.packet[..RTP_HEADER_LEN])
            .try_into()
            .expect("header slice");
        s.rtp.header.write(header);
        self.packet[RTP_HEADER_LEN..RTP_HEADER_LEN + n].copy_from_slice(payload);
        let Ok(len) = t
            .cipher
            .seal(&mut self.packet[..], RTP_HEADER_LEN, n, s.rtp.nonce)
        else {
            return Sent::Failed;
        };
        let stats = &self.stats.stats;
        match t.socket.send(&self.packet[..len]) {
            Ok(_) => {
                s.rtp.advance();
                s.quiet_ticks = 0;
                stats.packets_sent.fetch_add(1, Ordering::Relaxed);
                Sent::Ok
            }
            Err(_) => {
                // The nonce was used for this (unsent) packet; never reuse it.
                s.rtp.burn_nonce();
                stats.send_errors.fetch_add(1, Ordering::Relaxed);
                Sent::Failed
            }
        }
    }

    fn push_speaking(&mut self, t: &Arc<Transport>, s: &mut StreamState) {
        let note = PacerNote::Speaking {
            transport: t.clone(),
            value: s.speak_value,
        };
        s.speak_unsent = self.notes.push(note).is_err();
        self.notes_pushed = true;
    }
}

/// CPU time used by the calling thread.
fn thread_cpu_time() -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the call only writes to it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// The next speaking request after `value`.
fn next_request(value: u32, on: bool) -> u32 {
    (((value >> 1).wrapping_add(1)) << 1) | u32::from(on)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::voice::crypto::{EncryptionMode, TransportCipher};
    use crate::voice::dave::DaveCell;
    use crate::voice::rtp::RtpHeader;
    use crate::voice::{VoiceContext, VoiceSettings};
    use std::net::UdpSocket;
    use std::sync::atomic::AtomicU8;

    #[test]
    fn speaking_requests_count_up_and_carry_the_state() {
        assert_eq!(next_request(0, true), 0b11);
        assert_eq!(next_request(0b11, false), 0b100);
        assert_eq!(next_request(0b100, true), 0b111);
        assert_ne!(next_request(u32::MAX, true), u32::MAX);
    }

    /// Plays numbered frames while `playing` is 1, is idle otherwise.
    struct Numbered {
        playing: Arc<AtomicU8>,
        next: u32,
    }

    impl FrameSource for Numbered {
        fn next_frame(&mut self, out: &mut [u8; MAX_OPUS_PACKET]) -> FrameOutcome {
            if self.playing.load(Ordering::Relaxed) == 0 {
                return FrameOutcome::Idle;
            }
            out[..4].copy_from_slice(&self.next.to_be_bytes());
            out[4..40].fill(0xAB);
            self.next += 1;
            FrameOutcome::Frame(40)
        }
    }

    struct Received {
        header: RtpHeader,
        payload: Vec<u8>,
    }

    fn receive(sock: &UdpSocket, cipher: &TransportCipher, n: usize) -> Vec<Received> {
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        while out.len() < n {
            let len = sock.recv(&mut buf).expect("packet within the read timeout");
            let p = &mut buf[..len];
            let (header, hl) = RtpHeader::parse(p).unwrap();
            let (_, end) = cipher.open(p, hl).expect("packet decrypts");
            out.push(Received {
                header,
                payload: p[hl..end].to_vec(),
            });
        }
        out
    }

    /// The pacer against a real UDP socket, with this test playing the gateway task's part
    /// of the speaking handshake.
    #[test]
    fn pacer_sends_gapless_packets_silence_and_speaking_changes() {
        let ctx = VoiceContext::new(VoiceSettings::default());
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        tx.set_nonblocking(true).unwrap();
        let key = [9u8; 32];
        let mode = EncryptionMode::Aes256GcmRtpSize;
        let (t, mut speaking_rx) = Transport::new(
            7,
            tx,
            0x1234_5678,
            TransportCipher::new(mode, &key).unwrap(),
            DaveCell::passthrough(),
        );
        let slot = VoiceSlot::new();
        slot.claim(7);
        let playing = Arc::new(AtomicU8::new(1));
        let pacer_key = ctx.register(
            slot.clone(),
            Box::new(Numbered {
                playing: playing.clone(),
                next: 0,
            }),
        );
        // Nothing is pulled before a transport is installed.
        thread::sleep(Duration::from_millis(60));
        assert_eq!(slot.frame_counts(), Default::default());

        // The "gateway": acknowledge each request, remember them.
        let requests = Arc::new(parking_lot::Mutex::new(Vec::<u32>::new()));
        let gw_t = Arc::downgrade(&t);
        let gw_requests = requests.clone();
        let gateway = thread::spawn(move || {
            while let Some(v) = speaking_rx.blocking_recv() {
                gw_requests.lock().push(v);
                if let Some(t) = gw_t.upgrade() {
                    t.speaking_ack.store(v, Ordering::Release);
                }
            }
        });
        assert!(slot.install(t.clone()));

        let cipher = TransportCipher::new(mode, &key).unwrap();
        let first = receive(&rx, &cipher, 60);
        assert_eq!(
            requests.lock().first().map(|v| v & 1),
            Some(1),
            "speaking before audio"
        );
        for (i, r) in first.iter().enumerate() {
            assert_eq!(r.header.ssrc, 0x1234_5678);
            assert_eq!(
                r.header.sequence,
                first[0].header.sequence.wrapping_add(i as u16)
            );
            assert_eq!(
                r.header.timestamp,
                first[0].header.timestamp.wrapping_add(960 * i as u32)
            );
            assert_eq!(
                &r.payload[..4],
                &(i as u32).to_be_bytes(),
                "frames in order, none lost"
            );
        }

        playing.store(0, Ordering::Relaxed);
        // Packets already in flight, then exactly five silence frames.
        let mut tail = Vec::new();
        loop {
            let r = receive(&rx, &cipher, 1).pop().unwrap();
            let silent = r.payload == OPUS_SILENCE_FRAME;
            tail.push(r);
            if silent {
                break;
            }
        }
        tail.extend(receive(&rx, &cipher, 4));
        let silences = tail
            .iter()
            .filter(|r| r.payload == OPUS_SILENCE_FRAME)
            .count();
        assert_eq!(silences, 5);
        thread::sleep(Duration::from_millis(100));
        assert_eq!(
            requests.lock().last().map(|v| v & 1),
            Some(0),
            "speaking 0 after silence"
        );
        rx.set_read_timeout(Some(Duration::from_millis(150)))
            .unwrap();
        assert!(rx.recv(&mut [0u8; 64]).is_err(), "nothing sent while idle");

        // Audio resumes: speaking again first, the sequence continues without a gap.
        let before = requests.lock().len();
        let last_seq = tail.last().unwrap().header.sequence;
        playing.store(1, Ordering::Relaxed);
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let again = receive(&rx, &cipher, 3);
        assert_eq!(again[0].header.sequence, last_seq.wrapping_add(1));
        assert_eq!(requests.lock()[before] & 1, 1);
        // The pacer counts a frame after sending it: the receiver can be a moment ahead.
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        let mut counts = slot.frame_counts();
        while counts.sent < 60 + 3 && std::time::Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
            counts = slot.frame_counts();
        }
        assert!(counts.sent >= 60 + 3, "{counts:?}");
        assert_eq!(counts.nulled, 0);

        ctx.unregister(pacer_key);
        drop(ctx);
        drop(t);
        slot.clear_if(0); // wrong id: no effect
        assert!(slot.is_ready());
        let id = slot.transport.load().as_ref().unwrap().id;
        slot.clear_if(id);
        assert!(!slot.is_ready());
        gateway.join().unwrap();
    }

    #[test]
    fn a_superseded_connection_cannot_install_its_transport() {
        let slot = VoiceSlot::new();
        slot.claim(1);
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (old, _rx) = Transport::new(
            1,
            sock,
            1,
            TransportCipher::new(EncryptionMode::XChaCha20Poly1305RtpSize, &[1; 32]).unwrap(),
            DaveCell::passthrough(),
        );
        slot.claim(2);
        assert!(!slot.install(old));
        assert!(!slot.is_ready());
    }
}
