//! The media side: one UDP socket answers IP discovery and receives voice packets. A receiver
//! thread timestamps each packet as it arrives and hands it to a processing thread, which
//! decrypts (transport, then DAVE), decodes Opus and updates the stream's statistics — so slow
//! decoding never distorts the measured arrival times.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

use crate::dave::DaveDecrypt;
use crate::events::EventKind;
use crate::report::SeqClass;
use crate::server::{Shared, Stream, lock};
use crate::wire::{IpDiscovery, OPUS_SILENCE, RtpHeader, is_dave_frame, parse_keepalive};

struct Arrival {
    at: Duration,
    from: SocketAddr,
    data: Vec<u8>,
}

/// Starts the receiver and processing threads. They end when `shared` is the last reference
/// besides theirs... in practice with the process; the receiver polls `stop` every 200 ms.
pub fn start(shared: Arc<Shared>, socket: UdpSocket, stop: Arc<std::sync::atomic::AtomicBool>) {
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("set UDP read timeout");
    let (tx, rx) = mpsc::channel::<Arrival>();
    let recv_shared = shared.clone();
    std::thread::Builder::new()
        .name("fake-discord-udp-rx".into())
        .spawn(move || {
            let mut buf = vec![0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let Ok((len, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let at = recv_shared.now();
                let data = &buf[..len];
                if let Some(req) = IpDiscovery::parse(data) {
                    if req.kind == 1 {
                        let _ = socket.send_to(&IpDiscovery::response(req.ssrc, from), from);
                        let known_ssrc = recv_shared.stream(req.ssrc).is_some();
                        recv_shared.event(EventKind::IpDiscovery {
                            ssrc: req.ssrc,
                            from: from.to_string(),
                            known_ssrc,
                        });
                    }
                    continue;
                }
                if tx
                    .send(Arrival {
                        at,
                        from,
                        data: data.to_vec(),
                    })
                    .is_err()
                {
                    break;
                }
            }
        })
        .expect("spawn UDP receiver");
    std::thread::Builder::new()
        .name("fake-discord-udp-proc".into())
        .spawn(move || {
            let mut pcm = vec![0i16; 5760 * 2];
            while let Ok(a) = rx.recv() {
                process(&shared, a, &mut pcm);
                shared.changed.notify_waiters();
            }
        })
        .expect("spawn UDP processor");
}

fn process(shared: &Shared, a: Arrival, pcm: &mut [i16]) {
    if let Some(ssrc) = parse_keepalive(&a.data) {
        match shared.stream(ssrc) {
            Some(stream) => {
                let mut s = lock(&stream);
                s.stats.report.keepalives += 1;
                s.stats.report.last_keepalive_at = Some(a.at);
            }
            None => {
                shared.unknown_ssrc_packets.fetch_add(1, Ordering::Relaxed);
            }
        }
        return;
    }
    let Some(header) = RtpHeader::parse(&a.data).filter(|h| h.version == 2) else {
        shared.non_rtp_packets.fetch_add(1, Ordering::Relaxed);
        return;
    };
    // RTCP (payload types 72..=76 after masking the marker bit) is not voice.
    if (72..=76).contains(&header.payload_type) {
        shared.non_rtp_packets.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let Some(stream) = shared.stream(header.ssrc) else {
        shared.unknown_ssrc_packets.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let mut guard = lock(&stream);
    let s: &mut Stream = &mut guard;
    let header_ok = header.payload_type == 120 && header.csrc_count == 0;
    let class = s.stats.on_packet(
        a.at,
        a.data.len(),
        header.sequence,
        header.timestamp,
        header_ok,
    );
    if s.selected_address.is_some_and(|addr| addr != a.from) {
        s.stats.report.packets_from_other_address += 1;
    }
    let Some(cipher) = &s.cipher else {
        s.stats.report.transport_decrypt_failures += 1;
        return;
    };
    let decrypted = match cipher.decrypt(&a.data) {
        Ok(d) => d,
        Err(_) => {
            s.stats.report.transport_decrypt_failures += 1;
            return;
        }
    };
    s.stats.on_nonce(decrypted.nonce);
    let frame = decrypted.payload;
    if class == SeqClass::Duplicate {
        return;
    }
    let opus_frame = if frame == OPUS_SILENCE {
        s.stats.on_silence();
        frame
    } else if is_dave_frame(&frame) {
        match s.dave.as_ref().map(|d| lock(d).decrypt(&frame)) {
            Some(DaveDecrypt::Ok(plain)) => {
                s.stats.report.dave_frames += 1;
                plain
            }
            Some(DaveDecrypt::Failed(_)) => {
                s.stats.report.dave_decrypt_failures += 1;
                return;
            }
            Some(DaveDecrypt::NoMember) | None => {
                s.stats.report.dave_frames_without_member += 1;
                return;
            }
        }
    } else {
        s.stats.report.plain_frames += 1;
        if s.dave.as_ref().is_some_and(|d| lock(d).media_keys_live) {
            s.stats.report.plain_frames_while_dave += 1;
        }
        frame
    };
    if opus_frame != OPUS_SILENCE && s.stats.report.first_audio_at.is_none() {
        s.stats.report.first_audio_at = Some(a.at);
    }
    s.stats.keep_opus(&opus_frame);
    if !shared.config.decode_audio {
        return;
    }
    let missing = match class {
        SeqClass::InOrder { missing } => missing,
        // A late packet's slot was already filled with silence.
        _ => return,
    };
    if s.decoder.is_none() {
        s.decoder = opus::Decoder::new(48_000, opus::Channels::Stereo).ok();
    }
    let Some(decoder) = s.decoder.as_mut() else {
        return;
    };
    match decoder.decode(&opus_frame, pcm, false) {
        Ok(n) => s.stats.push_pcm(missing, &pcm[..n * 2]),
        Err(_) => s.stats.report.opus_decode_errors += 1,
    }
}
