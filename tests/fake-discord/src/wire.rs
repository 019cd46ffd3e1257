//! Byte-level formats of Discord's voice protocol as the server sees them: gateway opcodes,
//! close codes, the framing of binary (DAVE) gateway messages, the UDP IP-discovery packet and
//! the RTP header of voice packets.

use std::net::SocketAddr;

/// Voice gateway opcodes.
pub mod op {
    pub const IDENTIFY: u8 = 0;
    pub const SELECT_PROTOCOL: u8 = 1;
    pub const READY: u8 = 2;
    pub const HEARTBEAT: u8 = 3;
    pub const SESSION_DESCRIPTION: u8 = 4;
    pub const SPEAKING: u8 = 5;
    pub const HEARTBEAT_ACK: u8 = 6;
    pub const RESUME: u8 = 7;
    pub const HELLO: u8 = 8;
    pub const RESUMED: u8 = 9;
    pub const CLIENTS_CONNECT: u8 = 11;
    pub const CLIENT_DISCONNECT: u8 = 13;
    pub const DAVE_PREPARE_TRANSITION: u8 = 21;
    pub const DAVE_EXECUTE_TRANSITION: u8 = 22;
    pub const DAVE_TRANSITION_READY: u8 = 23;
    pub const DAVE_PREPARE_EPOCH: u8 = 24;
    pub const DAVE_MLS_EXTERNAL_SENDER: u8 = 25;
    pub const DAVE_MLS_KEY_PACKAGE: u8 = 26;
    pub const DAVE_MLS_PROPOSALS: u8 = 27;
    pub const DAVE_MLS_COMMIT_WELCOME: u8 = 28;
    pub const DAVE_MLS_ANNOUNCE_COMMIT_TRANSITION: u8 = 29;
    pub const DAVE_MLS_WELCOME: u8 = 30;
    pub const DAVE_MLS_INVALID_COMMIT_WELCOME: u8 = 31;
}

/// Voice gateway close codes the server uses.
pub mod close {
    pub const UNKNOWN_OPCODE: u16 = 4001;
    pub const DECODE_ERROR: u16 = 4002;
    pub const NOT_AUTHENTICATED: u16 = 4003;
    pub const AUTHENTICATION_FAILED: u16 = 4004;
    pub const ALREADY_AUTHENTICATED: u16 = 4005;
    pub const SESSION_NO_LONGER_VALID: u16 = 4006;
    pub const SESSION_TIMEOUT: u16 = 4009;
    pub const SERVER_NOT_FOUND: u16 = 4011;
    pub const UNKNOWN_PROTOCOL: u16 = 4012;
    pub const DISCONNECTED: u16 = 4014;
    pub const VOICE_SERVER_CRASHED: u16 = 4015;
    pub const UNKNOWN_ENCRYPTION_MODE: u16 = 4016;
    pub const DAVE_REQUIRED: u16 = 4017;
    pub const BAD_REQUEST: u16 = 4020;

    /// The reason text sent with a code when the caller gave none.
    pub fn default_reason(code: u16) -> &'static str {
        match code {
            UNKNOWN_OPCODE => "Unknown opcode",
            DECODE_ERROR => "Failed to decode payload",
            NOT_AUTHENTICATED => "Not authenticated",
            AUTHENTICATION_FAILED => "Authentication failed",
            ALREADY_AUTHENTICATED => "Already authenticated",
            SESSION_NO_LONGER_VALID => "Session no longer valid",
            SESSION_TIMEOUT => "Session timeout",
            SERVER_NOT_FOUND => "Server not found",
            UNKNOWN_PROTOCOL => "Unknown protocol",
            DISCONNECTED => "Disconnected",
            VOICE_SERVER_CRASHED => "Voice server crashed",
            UNKNOWN_ENCRYPTION_MODE => "Unknown encryption mode",
            DAVE_REQUIRED => "E2EE/DAVE protocol required",
            BAD_REQUEST => "Bad request",
            _ => "",
        }
    }

    /// Whether the session can still be resumed after the server closed with `code`.
    pub fn leaves_session_resumable(code: u16) -> bool {
        !matches!(
            code,
            AUTHENTICATION_FAILED
                | SESSION_NO_LONGER_VALID
                | SESSION_TIMEOUT
                | SERVER_NOT_FOUND
                | UNKNOWN_PROTOCOL
                | DISCONNECTED
                | UNKNOWN_ENCRYPTION_MODE
                | DAVE_REQUIRED
                | 4021
                | 4022
        )
    }
}

/// Builds a server-to-client binary frame: the big-endian sequence number (gateway v8 only),
/// the opcode byte, then the payload.
pub fn server_binary_frame(seq: Option<u16>, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 3);
    if let Some(seq) = seq {
        out.extend_from_slice(&seq.to_be_bytes());
    }
    out.push(opcode);
    out.extend_from_slice(payload);
    out
}

/// Splits a client-to-server binary frame (no sequence number) into opcode and payload.
pub fn parse_client_binary_frame(frame: &[u8]) -> Option<(u8, &[u8])> {
    let (&opcode, payload) = frame.split_first()?;
    Some((opcode, payload))
}

/// Size of an IP discovery packet: type, length, SSRC, 64-byte address, port.
pub const IP_DISCOVERY_LEN: usize = 74;

/// A parsed IP discovery packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpDiscovery {
    /// 1 = request, 2 = response.
    pub kind: u16,
    pub ssrc: u32,
    /// The address string (empty in a request).
    pub address: String,
    pub port: u16,
}

impl IpDiscovery {
    /// Parses a 74-byte discovery packet; `None` when the length or the length field is wrong.
    pub fn parse(packet: &[u8]) -> Option<IpDiscovery> {
        if packet.len() != IP_DISCOVERY_LEN {
            return None;
        }
        let kind = u16::from_be_bytes([packet[0], packet[1]]);
        let length = u16::from_be_bytes([packet[2], packet[3]]);
        if length != 70 || !(kind == 1 || kind == 2) {
            return None;
        }
        let ssrc = u32::from_be_bytes(packet[4..8].try_into().ok()?);
        let field = &packet[8..72];
        let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
        let address = String::from_utf8_lossy(&field[..end]).into_owned();
        let port = u16::from_be_bytes([packet[72], packet[73]]);
        Some(IpDiscovery {
            kind,
            ssrc,
            address,
            port,
        })
    }

    /// The response the server sends for a request from `peer`.
    pub fn response(ssrc: u32, peer: SocketAddr) -> [u8; IP_DISCOVERY_LEN] {
        let mut out = [0u8; IP_DISCOVERY_LEN];
        out[0..2].copy_from_slice(&2u16.to_be_bytes());
        out[2..4].copy_from_slice(&70u16.to_be_bytes());
        out[4..8].copy_from_slice(&ssrc.to_be_bytes());
        let ip = peer.ip().to_string();
        let n = ip.len().min(63);
        out[8..8 + n].copy_from_slice(&ip.as_bytes()[..n]);
        out[72..74].copy_from_slice(&peer.port().to_be_bytes());
        out
    }

    /// A request packet, as a client sends it.
    pub fn request(ssrc: u32) -> [u8; IP_DISCOVERY_LEN] {
        let mut out = [0u8; IP_DISCOVERY_LEN];
        out[0..2].copy_from_slice(&1u16.to_be_bytes());
        out[2..4].copy_from_slice(&70u16.to_be_bytes());
        out[4..8].copy_from_slice(&ssrc.to_be_bytes());
        out
    }
}

/// The fields of an RTP header the server checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub version: u8,
    pub has_extension: bool,
    pub csrc_count: u8,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// Bytes authenticated but not encrypted (rtpsize modes): the fixed header, the CSRCs
    /// and, when the X bit is set, the 4-byte extension preamble.
    pub aad_len: usize,
    /// Length of the extension body in bytes; it sits encrypted at the start of the plaintext.
    pub extension_body_len: usize,
}

impl RtpHeader {
    /// Parses the header of a voice packet; `None` if the packet is too short for it.
    pub fn parse(packet: &[u8]) -> Option<RtpHeader> {
        if packet.len() < 12 {
            return None;
        }
        let version = packet[0] >> 6;
        let has_extension = packet[0] & 0x10 != 0;
        let csrc_count = packet[0] & 0x0f;
        let payload_type = packet[1] & 0x7f;
        let sequence = u16::from_be_bytes([packet[2], packet[3]]);
        let timestamp = u32::from_be_bytes(packet[4..8].try_into().ok()?);
        let ssrc = u32::from_be_bytes(packet[8..12].try_into().ok()?);
        let mut aad_len = 12 + 4 * csrc_count as usize;
        let mut extension_body_len = 0;
        if has_extension {
            if packet.len() < aad_len + 4 {
                return None;
            }
            extension_body_len =
                4 * u16::from_be_bytes([packet[aad_len + 2], packet[aad_len + 3]]) as usize;
            aad_len += 4;
        }
        if packet.len() < aad_len {
            return None;
        }
        Some(RtpHeader {
            version,
            has_extension,
            csrc_count,
            payload_type,
            sequence,
            timestamp,
            ssrc,
            aad_len,
            extension_body_len,
        })
    }
}

/// The Opus silence frame, which DAVE passes through unencrypted.
pub const OPUS_SILENCE: [u8; 3] = [0xF8, 0xFF, 0xFE];

/// Whether a media frame carries the DAVE trailer (it ends with the `0xFAFA` magic marker).
/// A UDP keepalive as voice clients send them on a quiet connection: exactly the 4-byte
/// big-endian SSRC of the stream (songbird's form). Returns the SSRC.
pub fn parse_keepalive(packet: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(packet).ok().map(u32::from_be_bytes)
}

pub fn is_dave_frame(frame: &[u8]) -> bool {
    frame.len() >= 2 && frame[frame.len() - 2..] == [0xFA, 0xFA]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_discovery_request_layout() {
        let req = IpDiscovery::request(0x01020304);
        assert_eq!(&req[..8], &[0, 1, 0, 70, 1, 2, 3, 4]);
        assert!(req[8..].iter().all(|&b| b == 0));
        let parsed = IpDiscovery::parse(&req).unwrap();
        assert_eq!(parsed.kind, 1);
        assert_eq!(parsed.ssrc, 0x01020304);
        assert_eq!(parsed.address, "");
    }

    #[test]
    fn ip_discovery_response_carries_address_and_port() {
        let peer: SocketAddr = "127.0.0.1:50123".parse().unwrap();
        let resp = IpDiscovery::response(77, peer);
        assert_eq!(resp.len(), 74);
        assert_eq!(&resp[..4], &[0, 2, 0, 70]);
        assert_eq!(&resp[8..18], b"127.0.0.1\0");
        // port 50123 = 0xC3CB, big-endian in the last two bytes
        assert_eq!(&resp[72..], &[0xC3, 0xCB]);
        let parsed = IpDiscovery::parse(&resp).unwrap();
        assert_eq!(
            parsed,
            IpDiscovery {
                kind: 2,
                ssrc: 77,
                address: "127.0.0.1".into(),
                port: 50123
            }
        );
    }

    #[test]
    fn ip_discovery_rejects_wrong_sizes() {
        assert!(IpDiscovery::parse(&[0u8; 73]).is_none());
        let mut bad = IpDiscovery::request(1);
        bad[3] = 74; // length must be 70
        assert!(IpDiscovery::parse(&bad).is_none());
    }

    #[test]
    fn rtp_header_with_extension() {
        // V=2, X=1, CC=1; one CSRC; extension preamble BEDE with 2 words
        let mut pkt = vec![0x91, 0x78, 0x12, 0x34, 0, 0, 3, 0xC0, 0, 0, 0, 9];
        pkt.extend_from_slice(&[0, 0, 0, 1]); // CSRC
        pkt.extend_from_slice(&[0xBE, 0xDE, 0, 2]);
        pkt.extend_from_slice(&[0u8; 40]);
        let h = RtpHeader::parse(&pkt).unwrap();
        assert_eq!(h.version, 2);
        assert_eq!(h.payload_type, 120);
        assert_eq!(h.sequence, 0x1234);
        assert_eq!(h.timestamp, 960);
        assert_eq!(h.ssrc, 9);
        assert_eq!(h.aad_len, 20);
        assert_eq!(h.extension_body_len, 8);
    }

    #[test]
    fn binary_frames() {
        assert_eq!(
            server_binary_frame(Some(0x0102), 25, &[9]),
            vec![1, 2, 25, 9]
        );
        assert_eq!(server_binary_frame(None, 25, &[9]), vec![25, 9]);
        assert_eq!(
            parse_client_binary_frame(&[26, 1, 2]),
            Some((26, &[1u8, 2][..]))
        );
        assert_eq!(parse_client_binary_frame(&[]), None);
    }
}
