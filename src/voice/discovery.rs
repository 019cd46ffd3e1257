//! UDP IP discovery: the 74-byte request we send to the voice server and the response that
//! tells us our external address and port.
//!
//! Layout (big-endian): type u16 (1 = request, 2 = response), length u16 (= 70, the bytes after
//! this field), SSRC u32, a 64-byte address field (zero in the request, a NUL-terminated IP
//! string in the response), port u16.

use std::net::IpAddr;

/// Size of a discovery packet, request and response alike.
pub const IP_DISCOVERY_LEN: usize = 74;
const TYPE_REQUEST: u16 = 1;
const TYPE_RESPONSE: u16 = 2;
const BODY_LEN: u16 = 70;
const ADDRESS_LEN: usize = 64;

/// Why a discovery response was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    #[error("response is {0} bytes, expected {IP_DISCOVERY_LEN}")]
    BadLength(usize),
    #[error("packet type {0:#x} is not a discovery response")]
    NotAResponse(u16),
    #[error("length field {0} is not 70")]
    BadLengthField(u16),
    #[error("response is for SSRC {got}, we are {expected}")]
    WrongSsrc { expected: u32, got: u32 },
    #[error("address field is not a NUL-terminated IP address")]
    BadAddress,
}

/// Our address as the voice server sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiscoveredAddress {
    pub ip: IpAddr,
    pub port: u16,
}

/// Builds the request for `ssrc`.
pub fn request(ssrc: u32) -> [u8; IP_DISCOVERY_LEN] {
    let mut p = [0u8; IP_DISCOVERY_LEN];
    p[0..2].copy_from_slice(&TYPE_REQUEST.to_be_bytes());
    p[2..4].copy_from_slice(&BODY_LEN.to_be_bytes());
    p[4..8].copy_from_slice(&ssrc.to_be_bytes());
    p
}

/// Parses the server's response, checking that it answers our SSRC.
pub fn parse_response(buf: &[u8], ssrc: u32) -> Result<DiscoveredAddress, DiscoveryError> {
    if buf.len() != IP_DISCOVERY_LEN {
        return Err(DiscoveryError::BadLength(buf.len()));
    }
    let kind = u16::from_be_bytes([buf[0], buf[1]]);
    if kind != TYPE_RESPONSE {
        return Err(DiscoveryError::NotAResponse(kind));
    }
    let len = u16::from_be_bytes([buf[2], buf[3]]);
    if len != BODY_LEN {
        return Err(DiscoveryError::BadLengthField(len));
    }
    let got = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if got != ssrc {
        return Err(DiscoveryError::WrongSsrc {
            expected: ssrc,
            got,
        });
    }
    let field = &buf[8..8 + ADDRESS_LEN];
    let end = field
        .iter()
        .position(|&b| b == 0)
        .ok_or(DiscoveryError::BadAddress)?;
    let ip = std::str::from_utf8(&field[..end])
        .ok()
        .and_then(|s| s.parse::<IpAddr>().ok())
        .ok_or(DiscoveryError::BadAddress)?;
    let port = u16::from_be_bytes([buf[72], buf[73]]);
    Ok(DiscoveredAddress { ip, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response written field by field, as a server would.
    fn response(ssrc: u32, addr: &str, port: u16) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&2u16.to_be_bytes());
        p.extend_from_slice(&70u16.to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        let mut field = [0u8; 64];
        field[..addr.len()].copy_from_slice(addr.as_bytes());
        p.extend_from_slice(&field);
        p.extend_from_slice(&port.to_be_bytes());
        p
    }

    #[test]
    fn request_layout() {
        let r = request(0x0102_0304);
        assert_eq!(r.len(), 74);
        assert_eq!(&r[..8], &[0, 1, 0, 70, 1, 2, 3, 4]);
        assert!(r[8..].iter().all(|&b| b == 0));
    }

    #[test]
    fn response_parses_ipv4_and_ipv6() {
        let r = response(77, "203.0.113.9", 50_123);
        assert_eq!(
            parse_response(&r, 77),
            Ok(DiscoveredAddress {
                ip: "203.0.113.9".parse().unwrap(),
                port: 50_123
            })
        );
        let r = response(77, "2001:db8::1", 443);
        assert_eq!(
            parse_response(&r, 77).unwrap().ip,
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn bad_responses_are_errors() {
        let good = response(5, "10.0.0.1", 1);
        assert_eq!(
            parse_response(&good[..73], 5),
            Err(DiscoveryError::BadLength(73))
        );
        assert_eq!(
            parse_response(&good, 6),
            Err(DiscoveryError::WrongSsrc {
                expected: 6,
                got: 5
            })
        );
        let mut r = good.clone();
        r[1] = 1;
        assert_eq!(parse_response(&r, 5), Err(DiscoveryError::NotAResponse(1)));
        let mut r = good.clone();
        r[3] = 74;
        assert_eq!(
            parse_response(&r, 5),
            Err(DiscoveryError::BadLengthField(74))
        );
        let r = response(5, "not-an-ip", 1);
        assert_eq!(parse_response(&r, 5), Err(DiscoveryError::BadAddress));
        let mut r = good;
        r[8..72].fill(b'1'); // no terminator
        assert_eq!(parse_response(&r, 5), Err(DiscoveryError::BadAddress));
    }
}
