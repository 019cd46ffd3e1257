//! The route planner (`lavalink.server.ratelimit`): picks the local address outgoing source
//! traffic is bound to, from configured IP blocks, with Lavalink's four strategies, and keeps
//! the addresses that got rate limited (HTTP 429) out of use for a week unless freed.
//!
//! - `RotateOnBan`: one address at a time; move to the next when it is marked failing.
//! - `LoadBalance`: a random usable address per request.
//! - `NanoSwitch`: the address follows a nanosecond clock through the block (a new one per request).
//! - `RotatingNanoSwitch`: `NanoSwitch` within one /64, moving to the next /64 on a ban.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::Serialize;

use crate::config::{RateLimitConfig, RoutePlannerStrategy};

/// How long a failing address stays out of use.
const FAILING_TIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// One CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpBlock {
    V4 { base: u32, prefix: u8 },
    V6 { base: u128, prefix: u8 },
}

impl IpBlock {
    /// Parses `a.b.c.d/n` or `x::/n`.
    pub fn parse(text: &str) -> Result<IpBlock, String> {
        let (addr, prefix) = text
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("`{text}` is not a CIDR block (address/prefix)"))?;
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{text}`: `{addr}` is not an IP address"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| format!("`{text}`: `{prefix}` is not a prefix length"))?;
        match addr {
            IpAddr::V4(a) if prefix <= 32 => {
                let mask = if prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - prefix)
                };
                Ok(IpBlock::V4 {
                    base: u32::from(a) & mask,
                    prefix,
                })
            }
            IpAddr::V6(a) if prefix <= 128 => {
                let mask = if prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - prefix)
                };
                Ok(IpBlock::V6 {
                    base: u128::from(a) & mask,
                    prefix,
                })
            }
            _ => Err(format!("`{text}`: prefix length out of range")),
        }
    }

    /// Number of addresses (saturating at `u128::MAX` for a whole IPv6 space).
    pub fn size(&self) -> u128 {
        let host_bits = match self {
            IpBlock::V4 { prefix, .. } => 32 - *prefix as u32,
            IpBlock::V6 { prefix, .. } => 128 - *prefix as u32,
        };
        if host_bits >= 128 {
            u128::MAX
        } else {
            1u128 << host_bits
        }
    }

    fn is_v6(&self) -> bool {
        matches!(self, IpBlock::V6 { .. })
    }

    fn address_at(&self, index: u128) -> IpAddr {
        match self {
            IpBlock::V4 { base, .. } => IpAddr::V4(Ipv4Addr::from(base.wrapping_add(index as u32))),
            IpBlock::V6 { base, .. } => IpAddr::V6(Ipv6Addr::from(base.wrapping_add(index))),
        }
    }
}

/// Route-planner status as `GET /v4/routeplanner/status` returns it (spec §2.10).
#[derive(Debug, Clone, Serialize)]
pub struct RoutePlannerStatus {
    pub class: String,
    pub details: serde_json::Value,
}

#[derive(Debug)]
struct State {
    /// Addresses marked failing, with the epoch ms they were marked.
    failing: HashMap<IpAddr, i64>,
    /// Times the planner moved on after a ban.
    rotate_index: u128,
    /// Index of the current address in the combined block (rotating), or of the current /64.
    index: u128,
    current: Option<IpAddr>,
    /// The index last used by a nano strategy.
    nano_index: u128,
    rng: u64,
}

/// The planner.
#[derive(Debug)]
pub struct RoutePlanner {
    blocks: Vec<IpBlock>,
    excluded: Vec<IpAddr>,
    strategy: RoutePlannerStrategy,
    pub search_triggers_fail: bool,
    pub retry_limit: i64,
    started: Instant,
    state: Mutex<State>,
}

impl RoutePlanner {
    /// Builds the planner from the config, or `None` when no block is configured (disabled).
    pub fn from_config(cfg: &RateLimitConfig) -> Result<Option<RoutePlanner>, String> {
        if cfg.ip_blocks.is_empty() {
            return Ok(None);
        }
        let blocks = cfg
            .ip_blocks
            .iter()
            .map(|b| IpBlock::parse(b))
            .collect::<Result<Vec<_>, _>>()?;
        if blocks.iter().any(|b| b.is_v6() != blocks[0].is_v6()) {
            return Err("all ipBlocks must be of the same address family".into());
        }
        let excluded = cfg
            .excluded_ips
            .iter()
            .map(|a| {
                a.trim()
                    .parse::<IpAddr>()
                    .map_err(|_| format!("excludedIps: `{a}` is not an IP address"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(RoutePlanner {
            blocks,
            excluded,
            strategy: cfg.strategy,
            search_triggers_fail: cfg.search_triggers_fail,
            retry_limit: cfg.retry_limit,
            started: Instant::now(),
            state: Mutex::new(State {
                failing: HashMap::new(),
                rotate_index: 0,
                index: 0,
                current: None,
                nano_index: 0,
                rng: 0x9E37_79B9_7F4A_7C15 ^ crate::util::now_millis() as u64,
            }),
        }))
    }

    fn size(&self) -> u128 {
        self.blocks
            .iter()
            .fold(0u128, |acc, b| acc.saturating_add(b.size()))
    }

    fn address_at(&self, mut index: u128) -> IpAddr {
        for b in &self.blocks {
            if index < b.size() {
                return b.address_at(index);
            }
            index -= b.size();
        }
        self.blocks[0].address_at(0)
    }

    fn usable(&self, state: &mut State, addr: IpAddr) -> bool {
        if self.excluded.contains(&addr) {
            return false;
        }
        match state.failing.get(&addr) {
            None => true,
            Some(at) if crate::util::now_millis() - at > FAILING_TIME.as_millis() as i64 => {
                state.failing.remove(&addr);
                true
            }
            Some(_) => false,
        }
    }

    fn random(state: &mut State) -> u128 {
        // xorshift64*: good enough to spread addresses, no crypto needed.
        let mut x = state.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.rng = x;
        let a = x.wrapping_mul(0x2545_F491_4F6C_DD1D) as u128;
        let b = (x.rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15) as u128;
        (a << 64) | b
    }

    /// The local address for the next outgoing request, or `None` when none is usable.
    pub fn next_address(&self) -> Option<IpAddr> {
        let size = self.size();
        let mut s = self.state.lock();
        let tries = size.min(4096) as usize + 1;
        match self.strategy {
            RoutePlannerStrategy::RotateOnBan => {
                if let Some(cur) = s.current
                    && self.usable(&mut s, cur)
                {
                    return Some(cur);
                }
                for _ in 0..tries {
                    let step = if size > 128 {
                        10 + Self::random(&mut s) % 10
                    } else {
                        1
                    };
                    s.index = (s.index + step) % size.max(1);
                    let addr = self.address_at(s.index);
                    if self.usable(&mut s, addr) {
                        s.current = Some(addr);
                        return Some(addr);
                    }
                }
                None
            }
            RoutePlannerStrategy::LoadBalance => {
                for _ in 0..tries {
                    let addr = self.address_at(Self::random(&mut s) % size.max(1));
                    if self.usable(&mut s, addr) {
                        return Some(addr);
                    }
                }
                None
            }
            RoutePlannerStrategy::NanoSwitch => {
                let mut index = self.started.elapsed().as_nanos() % size.max(1);
                for _ in 0..tries {
                    let addr = self.address_at(index);
                    if self.usable(&mut s, addr) {
                        s.nano_index = index;
                        return Some(addr);
                    }
                    index = (index + 1) % size.max(1);
                }
                None
            }
            RoutePlannerStrategy::RotatingNanoSwitch => {
                // Blocks of /64 (or the whole block when smaller).
                let sub = size.clamp(1, 1u128 << 64);
                let blocks = (size / sub).max(1);
                for _ in 0..tries {
                    let within = self.started.elapsed().as_nanos() % sub;
                    let index = (s.index % blocks) * sub + within;
                    let addr = self.address_at(index);
                    if self.usable(&mut s, addr) {
                        s.nano_index = within;
                        s.current = Some(addr);
                        return Some(addr);
                    }
                    if sub == 1 {
                        s.index += 1;
                    }
                }
                None
            }
        }
    }

    /// Marks `addr` as rate limited; rotating strategies move on.
    pub fn mark_failing(&self, addr: IpAddr) {
        let mut s = self.state.lock();
        let already = s.failing.contains_key(&addr);
        s.failing.insert(addr, crate::util::now_millis());
        if already {
            return;
        }
        match self.strategy {
            RoutePlannerStrategy::RotateOnBan if s.current == Some(addr) => {
                s.rotate_index += 1;
            }
            RoutePlannerStrategy::RotatingNanoSwitch => {
                s.rotate_index += 1;
                s.index += 1;
            }
            _ => {}
        }
        tracing::warn!(address = %addr, "route planner: address marked as failing");
    }

    /// Clears the failing mark of `addr`.
    pub fn free_address(&self, addr: IpAddr) {
        self.state.lock().failing.remove(&addr);
    }

    pub fn free_all(&self) {
        self.state.lock().failing.clear();
    }

    /// The status object of spec §2.10.
    pub fn status(&self) -> RoutePlannerStatus {
        let s = self.state.lock();
        let mut failing: Vec<_> = s.failing.iter().collect();
        failing.sort_by_key(|(_, at)| **at);
        let failing: Vec<_> = failing
            .into_iter()
            .map(|(addr, at)| {
                serde_json::json!({
                    "failingAddress": format!("/{addr}"),
                    "failingTimestamp": at,
                    "failingTime": java_date(*at),
                })
            })
            .collect();
        let ip_block = serde_json::json!({
            "type": if self.blocks[0].is_v6() { "Inet6Address" } else { "Inet4Address" },
            "size": self.size().to_string(),
        });
        let mut details = serde_json::json!({ "ipBlock": ip_block, "failingAddresses": failing });
        let d = details.as_object_mut().expect("object");
        let class = match self.strategy {
            RoutePlannerStrategy::RotateOnBan => {
                d.insert("rotateIndex".into(), s.rotate_index.to_string().into());
                d.insert("ipIndex".into(), s.index.to_string().into());
                d.insert(
                    "currentAddress".into(),
                    s.current
                        .map(|a| format!("/{a}"))
                        .unwrap_or_default()
                        .into(),
                );
                "RotatingIpRoutePlanner"
            }
            RoutePlannerStrategy::NanoSwitch => {
                d.insert(
                    "currentAddressIndex".into(),
                    s.nano_index.to_string().into(),
                );
                "NanoIpRoutePlanner"
            }
            RoutePlannerStrategy::RotatingNanoSwitch => {
                d.insert("blockIndex".into(), s.index.to_string().into());
                d.insert(
                    "currentAddressIndex".into(),
                    s.nano_index.to_string().into(),
                );
                "RotatingNanoIpRoutePlanner"
            }
            RoutePlannerStrategy::LoadBalance => "BalancingIpRoutePlanner",
        };
        RoutePlannerStatus {
            class: class.into(),
            details,
        }
    }
}

/// `java.util.Date#toString` style, in UTC: `Thu Dec 04 18:30:19 UTC 2026`.
fn java_date(epoch_ms: i64) -> String {
    let secs = epoch_ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} UTC {}",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        day,
        h,
        m,
        s,
        year
    )
}

/// Seconds since the Unix epoch (used by tests).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planner(blocks: &[&str], strategy: RoutePlannerStrategy) -> RoutePlanner {
        RoutePlanner::from_config(&RateLimitConfig {
            ip_blocks: blocks.iter().map(|s| s.to_string()).collect(),
            excluded_ips: vec!["127.0.0.2".into()],
            strategy,
            search_triggers_fail: true,
            retry_limit: -1,
        })
        .unwrap()
        .unwrap()
    }

    #[test]
    fn cidr_parsing() {
        assert_eq!(IpBlock::parse("127.0.0.0/30").unwrap().size(), 4);
        assert_eq!(IpBlock::parse("2001:db8::/64").unwrap().size(), 1u128 << 64);
        assert!(IpBlock::parse("127.0.0.1").is_err());
        assert!(IpBlock::parse("127.0.0.0/33").is_err());
        assert!(IpBlock::parse("nope/8").is_err());
    }

    #[test]
    fn rotate_on_ban_stays_then_moves_and_skips_excluded() {
        let p = planner(&["127.0.0.0/29"], RoutePlannerStrategy::RotateOnBan);
        let first = p.next_address().unwrap();
        assert_eq!(p.next_address(), Some(first), "sticks to one address");
        p.mark_failing(first);
        let second = p.next_address().unwrap();
        assert_ne!(first, second);
        assert_ne!(second, "127.0.0.2".parse::<IpAddr>().unwrap());
        let st = p.status();
        assert_eq!(st.class, "RotatingIpRoutePlanner");
        assert_eq!(st.details["rotateIndex"], "1");
        assert_eq!(st.details["ipBlock"]["size"], "8");
        assert_eq!(
            st.details["failingAddresses"][0]["failingAddress"],
            format!("/{first}")
        );
        assert!(
            st.details["failingAddresses"][0]["failingTime"]
                .as_str()
                .unwrap()
                .contains("UTC")
        );
        p.free_all();
        assert!(
            p.status().details["failingAddresses"]
                .as_array()
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn load_balance_spreads_and_avoids_failing() {
        let p = planner(&["127.0.0.0/29"], RoutePlannerStrategy::LoadBalance);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            seen.insert(p.next_address().unwrap());
        }
        assert!(seen.len() >= 5, "{seen:?}");
        let bad: IpAddr = "127.0.0.3".parse().unwrap();
        p.mark_failing(bad);
        for _ in 0..200 {
            assert_ne!(p.next_address(), Some(bad));
        }
        p.free_address(bad);
        assert_eq!(p.status().class, "BalancingIpRoutePlanner");
    }

    #[test]
    fn nano_strategies_report_their_shapes() {
        let p = planner(&["2001:db8::/64"], RoutePlannerStrategy::NanoSwitch);
        assert!(matches!(p.next_address(), Some(IpAddr::V6(_))));
        let st = p.status();
        assert_eq!(st.class, "NanoIpRoutePlanner");
        assert_eq!(st.details["ipBlock"]["type"], "Inet6Address");
        assert!(st.details["currentAddressIndex"].is_string());
        let p = planner(&["2001:db8::/48"], RoutePlannerStrategy::RotatingNanoSwitch);
        let a = p.next_address().unwrap();
        p.mark_failing(a);
        let b = p.next_address().unwrap();
        let (IpAddr::V6(a), IpAddr::V6(b)) = (a, b) else {
            panic!()
        };
        assert_ne!(
            u128::from(a) >> 64,
            u128::from(b) >> 64,
            "moved to another /64"
        );
        let st = p.status();
        assert_eq!(st.class, "RotatingNanoIpRoutePlanner");
        assert_eq!(st.details["blockIndex"], "1");
    }

    #[test]
    fn exhausted_block_gives_none() {
        let p = planner(&["127.0.0.2/32"], RoutePlannerStrategy::RotateOnBan);
        assert_eq!(p.next_address(), None, "the only address is excluded");
    }

    #[test]
    fn java_date_format() {
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(java_date(1_796_409_019_000), "Fri Dec 04 18:30:19 UTC 2026");
    }
}
