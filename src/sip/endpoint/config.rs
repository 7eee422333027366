//! Settings of the sans-IO endpoint, derived from `[sip]`.

use std::time::Duration;

use super::session_timer::SessionTimerConfig;
use crate::sip::SipConfig;
use crate::sip::transaction::TimerConfig;

/// Methods we accept, for Allow (RFC 3261 §20.5). REFER is sent, never accepted; PRACK is
/// listed because reliable provisionals are implemented (RFC 3262).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, NOTIFY";
/// Extensions we support, for Supported.
pub const SUPPORTED: &str = "100rel, timer";
/// Bodies we accept, for Accept.
pub const ACCEPT: &str = "application/sdp, application/dtmf-relay, application/dtmf";
/// Extension tokens a peer may require of us (RFC 3261 §8.2.2.3).
pub const UNDERSTOOD: [&str; 2] = ["100rel", "timer"];

/// Settings of one [`super::Endpoint`].
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// T1, T2 and T4.
    pub timers: TimerConfig,
    /// User-Agent and Server header value; empty leaves them out.
    pub user_agent: String,
    /// `host[:port]` for Contact and Via when behind NAT; empty uses the local address.
    pub public_addr: String,
    /// Largest message accepted.
    pub max_message_size: usize,
    /// Drop requests from unknown sources instead of answering 403.
    pub drop_unknown_sources: bool,
    /// Requests per second accepted from one source address.
    pub source_rate_per_sec: u32,
    /// Ring this long before a requested answer is sent.
    pub answer_delay: Duration,
    /// Session timer settings.
    pub session_timer: SessionTimerConfig,
    /// How long a digest nonce stays valid.
    pub nonce_lifetime: Duration,
    /// Retry-After seconds on the 503 sent while draining.
    pub retry_after_secs: u32,
    /// Seed of the random generator for tags, branches and nonces; 0 takes one from the OS.
    pub seed: u64,
}

impl EndpointConfig {
    /// Builds the settings from `[sip]`.
    pub fn from_sip(config: &SipConfig) -> EndpointConfig {
        EndpointConfig {
            timers: TimerConfig {
                t1: Duration::from_millis(config.t1_ms),
                t2: Duration::from_millis(config.t2_ms),
                t4: Duration::from_millis(config.t4_ms),
            },
            user_agent: config.user_agent.clone(),
            public_addr: config.public_addr.clone(),
            max_message_size: config.max_message_size,
            drop_unknown_sources: config.unknown_source == "drop",
            source_rate_per_sec: config.source_rate_per_sec,
            answer_delay: Duration::from_millis(config.answer_delay_ms),
            session_timer: SessionTimerConfig {
                session_expires: config.session_expires_secs,
                min_se: config.min_se_secs,
            },
            nonce_lifetime: Duration::from_secs(config.nonce_secs),
            retry_after_secs: config.retry_after_secs,
            seed: config.seed,
        }
    }
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig::from_sip(&SipConfig::default())
    }
}
