//! What all voice connections share: the pacer thread, the handshake gate, the TLS client
//! configuration and the counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::Sender;
use tokio::sync::Semaphore;

use super::FrameSource;
use super::metrics::{VoiceMetrics, VoiceMetricsSnapshot};
use super::pacer::{PacerCommand, PacerThreads};
use super::transport::VoiceSlot;

/// Settings of the voice side.
#[derive(Debug, Clone)]
pub struct VoiceSettings {
    /// At most this many voice handshakes (WebSocket open to Session Description, or to
    /// Resumed) run at once; the others wait their turn.
    pub handshake_limit: usize,
    /// A handshake that takes longer than this is abandoned (and retried per the close policy).
    pub handshake_timeout: Duration,
    /// Sent in Identify. 1 is the only DAVE version there is; 0 would get close code 4017.
    pub max_dave_protocol_version: u16,
}

impl Default for VoiceSettings {
    fn default() -> Self {
        VoiceSettings {
            handshake_limit: 32,
            handshake_timeout: Duration::from_secs(10),
            max_dave_protocol_version: davey::DAVE_PROTOCOL_VERSION,
        }
    }
}

/// Room in the registration queue; `register` waits (at most one 20 ms tick) only when
/// more registrations than this arrive within one tick.
const REGISTRATION_QUEUE: usize = 4096;

/// Identifies a player registered with the pacer.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PacerKey(u64);

/// Shared by all players: the pacer thread, the handshake gate, the TLS client config.
pub struct VoiceContext {
    pub(crate) settings: VoiceSettings,
    pub(crate) gate: Arc<Semaphore>,
    pub(crate) tls: Arc<rustls::ClientConfig>,
    pub(crate) metrics: Arc<VoiceMetrics>,
    pacer_tx: Sender<PacerCommand>,
    pacer: PacerThreads,
    next_key: AtomicU64,
    next_connection: AtomicU64,
}

impl VoiceContext {
    /// Starts the pacer and loads the OS trust store (which honours `SSL_CERT_FILE`).
    ///
    /// # Panics
    /// Only if the OS refuses to start the pacer's two threads.
    pub fn new(settings: VoiceSettings) -> Arc<Self> {
        let (pacer_tx, pacer_rx) = crossbeam_channel::bounded(REGISTRATION_QUEUE);
        let pacer = PacerThreads::spawn(pacer_rx).expect("cannot start the voice pacer threads");
        let settings = VoiceSettings {
            handshake_limit: settings.handshake_limit.max(1),
            ..settings
        };
        Arc::new(VoiceContext {
            gate: Arc::new(Semaphore::new(settings.handshake_limit)),
            tls: Arc::new(tls_client_config()),
            metrics: Arc::new(VoiceMetrics::default()),
            settings,
            pacer_tx,
            pacer,
            next_key: AtomicU64::new(1),
            next_connection: AtomicU64::new(1),
        })
    }

    pub fn settings(&self) -> &VoiceSettings {
        &self.settings
    }

    /// Registers a player with the pacer once, when the player is created. The pacer calls
    /// `source.next_frame()` every 20 ms only while `slot` holds a ready transport.
    pub fn register(&self, slot: Arc<VoiceSlot>, source: Box<dyn FrameSource>) -> PacerKey {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        // Fails only when the pacer has stopped, and then there is nobody to register with.
        let _ = self
            .pacer_tx
            .send(PacerCommand::Register { key, slot, source });
        PacerKey(key)
    }

    /// Removes a player from the pacer; its `FrameSource` is dropped off the pacer thread.
    pub fn unregister(&self, key: PacerKey) {
        let _ = self.pacer_tx.send(PacerCommand::Unregister { key: key.0 });
    }

    /// A copy of the voice counters.
    pub fn metrics(&self) -> VoiceMetricsSnapshot {
        self.metrics.snapshot(&self.pacer.shared.stats)
    }

    pub(crate) fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }
}

impl Drop for VoiceContext {
    fn drop(&mut self) {
        self.pacer.stop();
    }
}

/// rustls with the OS trust store. `rustls-native-certs` reads `SSL_CERT_FILE` /
/// `SSL_CERT_DIR` when set, so a deployment (or a test) can add its own CA the standard way.
fn tls_client_config() -> rustls::ClientConfig {
    let loaded = rustls_native_certs::load_native_certs();
    for e in &loaded.errors {
        tracing::warn!(error = %e, "could not load some OS root certificates");
    }
    let mut roots = rustls::RootCertStore::empty();
    let (_added, ignored) = roots.add_parsable_certificates(loaded.certs);
    if ignored > 0 {
        tracing::debug!(ignored, "unparsable root certificates ignored");
    }
    if roots.is_empty() {
        tracing::warn!("no trusted root certificates found; voice connections will fail TLS");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the aws-lc-rs provider supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}
