//! Outgoing source traffic: the HTTP clients and the local address each request leaves from.
//!
//! Without a route planner every request goes through one client. With one (Lavalink's
//! `ratelimit.ipBlocks`), each request asks the planner for the next address and goes through a
//! client bound to it (clients are kept per address, so connections to a host are reused while
//! the address is); an HTTP 429 marks that address as failing and the request is tried again
//! from another one, up to `retryLimit` times.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::routeplanner::RoutePlanner;
use crate::sources::{ProxySettings, SourceSettings};

const USER_AGENT: &str = concat!("Acoustic/", env!("CARGO_PKG_VERSION"));

/// Clients kept at most (a planner over a large IPv6 block gives a new address per request).
const MAX_CLIENTS: usize = 64;
/// Retries after a 429 when `retryLimit` is -1 (the default).
const DEFAULT_RETRIES: u32 = 3;
/// Retries after a 429 when `retryLimit` is 0 ("unlimited"), so a block of banned addresses
/// still ends.
const UNLIMITED_RETRIES: u32 = 64;

/// How the clients are built.
#[derive(Debug, Clone)]
struct ClientSettings {
    connect_timeout: Duration,
    read_timeout: Duration,
    proxy: Option<ProxySettings>,
}

pub struct Net {
    settings: ClientSettings,
    planner: Option<Arc<RoutePlanner>>,
    /// By local address (`None`: the system's choice).
    clients: Mutex<HashMap<Option<IpAddr>, reqwest::Client>>,
}

impl Net {
    pub fn new(settings: &SourceSettings) -> Arc<Net> {
        let net = Net {
            settings: ClientSettings {
                connect_timeout: settings.connect_timeout,
                read_timeout: settings.read_timeout,
                proxy: settings.proxy.clone(),
            },
            planner: settings.route_planner.clone(),
            clients: Mutex::new(HashMap::new()),
        };
        // Build the unbound client now: a broken TLS backend or proxy shows at start-up.
        let _ = net.client(None);
        Arc::new(net)
    }

    /// The client for requests from `address`.
    pub fn client(&self, address: Option<IpAddr>) -> reqwest::Client {
        let mut clients = self.clients.lock();
        if let Some(client) = clients.get(&address) {
            return client.clone();
        }
        if clients.len() >= MAX_CLIENTS {
            clients.retain(|a, _| a.is_none());
        }
        let client = build_client(&self.settings, address);
        clients.insert(address, client.clone());
        client
    }

    /// The address and client for the next request: the planner's next address, if there is a
    /// planner. Fails when the planner has no usable address left.
    pub fn pick(&self) -> Result<(Option<IpAddr>, reqwest::Client), String> {
        let address = match &self.planner {
            None => None,
            Some(planner) => Some(planner.next_address().ok_or_else(|| {
                "the route planner has no usable address (all are failing or excluded)".to_string()
            })?),
        };
        Ok((address, self.client(address)))
    }

    /// Reports a 429 from `address`; true when the request may be tried again (from another
    /// address) after `tries` tries so far.
    pub fn rate_limited(&self, address: Option<IpAddr>, tries: u32) -> bool {
        let (Some(planner), Some(address)) = (&self.planner, address) else {
            return false;
        };
        planner.mark_failing(address);
        let retries = match planner.retry_limit {
            n if n < 0 => DEFAULT_RETRIES,
            0 => UNLIMITED_RETRIES,
            n => u32::try_from(n).unwrap_or(UNLIMITED_RETRIES),
        };
        tries <= retries
    }

    /// The planner, if outgoing traffic is routed.
    pub fn planner(&self) -> Option<&Arc<RoutePlanner>> {
        self.planner.as_ref()
    }
}

fn build_client(settings: &ClientSettings, address: Option<IpAddr>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(settings.connect_timeout)
        .read_timeout(settings.read_timeout)
        .pool_idle_timeout(Duration::from_secs(30))
        .local_address(address);
    builder = match &settings.proxy {
        Some(proxy) => match proxy_for(proxy) {
            Ok(p) => builder.proxy(p),
            Err(e) => {
                tracing::error!("httpConfig proxy is not usable, going without it: {e}");
                builder.no_proxy()
            }
        },
        // Only the configured proxy is used, never one from the environment.
        None => builder.no_proxy(),
    };
    builder
        .build()
        .expect("the HTTP client (TLS backend) could not be initialised")
}

fn proxy_for(settings: &ProxySettings) -> Result<reqwest::Proxy, reqwest::Error> {
    let mut proxy = reqwest::Proxy::all(format!("http://{}:{}", settings.host, settings.port))?;
    if let Some(user) = settings.user.as_deref().filter(|u| !u.is_empty()) {
        proxy = proxy.basic_auth(user, settings.password.as_deref().unwrap_or(""));
    }
    Ok(proxy)
}
