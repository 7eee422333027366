//! `[sip]` and `[[trunk]]` settings.

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// `[sip]` section: transports, timers and limits of the SIP stack.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SipConfig {
    /// UDP listen address; empty disables UDP.
    pub udp: String,
    /// TCP listen address; empty disables TCP.
    pub tcp: String,
    /// Address written into Contact and SDP when the node is behind NAT; empty uses the
    /// listening address.
    pub public_addr: String,
    /// Largest SIP message accepted, in bytes.
    pub max_message_size: usize,
    /// RFC 3261 Timer T1 (round-trip estimate), in milliseconds.
    pub t1_ms: u64,
    /// RFC 3261 Timer T2 (maximum retransmit interval), in milliseconds.
    pub t2_ms: u64,
    /// RFC 3261 Timer T4 (maximum time a message stays in the network), in milliseconds.
    pub t4_ms: u64,
    /// Value of the User-Agent and Server headers.
    pub user_agent: String,
    /// What to do with requests from a source that matches no trunk: `reject` (403) or `drop`.
    pub unknown_source: String,
    /// Requests per second accepted from one source address before it is throttled.
    pub source_rate_per_sec: u32,
    /// Milliseconds to ring (180) before answering an INVITE.
    pub answer_delay_ms: u64,
    /// Session-Expires we ask for when the caller does not (RFC 4028), in seconds.
    pub session_expires_secs: u32,
    /// Smallest Session-Expires we accept (RFC 4028 Min-SE), in seconds.
    pub min_se_secs: u32,
    /// Seconds an idle TCP connection stays open.
    pub tcp_idle_secs: u64,
    /// Seconds a digest nonce stays valid before a retry gets `stale=true`.
    pub nonce_secs: u64,
    /// Retry-After seconds on the 503 that new INVITEs get while draining.
    pub retry_after_secs: u32,
    /// Seed for tags, branches and nonces, so a test can replay the same bytes; 0 draws one
    /// from the operating system.
    pub seed: u64,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            udp: "0.0.0.0:5060".into(),
            tcp: "0.0.0.0:5060".into(),
            public_addr: String::new(),
            max_message_size: 65_535,
            t1_ms: 500,
            t2_ms: 4_000,
            t4_ms: 5_000,
            user_agent: "voicegate".into(),
            unknown_source: "reject".into(),
            source_rate_per_sec: 200,
            answer_delay_ms: 0,
            session_expires_secs: 1_800,
            min_se_secs: 90,
            tcp_idle_secs: 300,
            nonce_secs: 300,
            retry_after_secs: 30,
            seed: 0,
        }
    }
}

impl SipConfig {
    /// Checks the section's values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [("sip.udp", &self.udp), ("sip.tcp", &self.tcp)] {
            if !value.is_empty() && value.parse::<std::net::SocketAddr>().is_err() {
                return Err(ConfigError::key(
                    key,
                    format!("`{value}` is not an address like 0.0.0.0:5060 (or empty to disable)"),
                ));
            }
        }
        if self.udp.is_empty() && self.tcp.is_empty() {
            return Err(ConfigError::key(
                "sip.udp",
                "both sip.udp and sip.tcp are empty; enable at least one transport",
            ));
        }
        if !["reject", "drop"].contains(&self.unknown_source.as_str()) {
            return Err(ConfigError::key(
                "sip.unknown_source",
                format!("`{}` is not `reject` or `drop`", self.unknown_source),
            ));
        }
        if self.t1_ms == 0 || self.t2_ms < self.t1_ms {
            return Err(ConfigError::key(
                "sip.t2_ms",
                "timers need t1_ms > 0 and t2_ms >= t1_ms",
            ));
        }
        if self.max_message_size < 1024 {
            return Err(ConfigError::key(
                "sip.max_message_size",
                format!(
                    "{} bytes is too small; use at least 1024",
                    self.max_message_size
                ),
            ));
        }
        if self.nonce_secs == 0 {
            return Err(ConfigError::key(
                "sip.nonce_secs",
                "must be at least 1 second",
            ));
        }
        if !self.public_addr.is_empty()
            && crate::sip::message::split_host_port(&self.public_addr).is_none()
        {
            return Err(ConfigError::key(
                "sip.public_addr",
                format!(
                    "`{}` is not host[:port] like 203.0.113.7:5060 or [2001:db8::7]",
                    self.public_addr
                ),
            ));
        }
        if self.min_se_secs < 90 || self.session_expires_secs < self.min_se_secs {
            return Err(ConfigError::key(
                "sip.min_se_secs",
                "RFC 4028 needs min_se_secs >= 90 and session_expires_secs >= min_se_secs",
            ));
        }
        Ok(())
    }
}

/// One `[[trunk]]` entry: a carrier, SBC or PBX allowed to send calls.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TrunkConfig {
    /// Name used in logs, metrics and CDRs.
    pub name: String,
    /// Source networks in CIDR notation (`203.0.113.0/24`, `::1/128`).
    pub sources: Vec<String>,
    /// Digest user name; empty means no authentication.
    pub username: String,
    /// Digest password.
    pub password: String,
    /// Digest realm; empty uses `voicegate`.
    pub realm: String,
    /// Challenge with 407 and Proxy-Authenticate instead of 401 and WWW-Authenticate, for
    /// trunks that only answer proxy challenges.
    pub proxy_auth: bool,
    /// Concurrent calls allowed from this trunk; 0 means no limit.
    pub max_calls: u32,
    /// New calls per second allowed from this trunk; 0 means no limit.
    pub max_cps: u32,
    /// Country calling code used to complete national numbers (`1` for NANP).
    pub default_country: String,
    /// Headers tried in order to find the dialled number: `p-called-party-id`, `request-uri`,
    /// `to`.
    pub number_from: Vec<String>,
    /// Trust P-Called-Party-ID from this trunk.
    pub trusted: bool,
    /// Accept RTP only from the latched source address.
    pub strict_rtp_source: bool,
}

impl Default for TrunkConfig {
    fn default() -> Self {
        Self {
            name: "loopback".into(),
            sources: vec!["127.0.0.0/8".into(), "::1/128".into()],
            username: String::new(),
            password: String::new(),
            realm: String::new(),
            proxy_auth: false,
            max_calls: 0,
            max_cps: 0,
            default_country: "1".into(),
            number_from: vec![
                "p-called-party-id".into(),
                "request-uri".into(),
                "to".into(),
            ],
            trusted: true,
            strict_rtp_source: true,
        }
    }
}

impl TrunkConfig {
    /// Checks one entry; `index` names it in errors.
    pub fn validate(&self, index: usize) -> Result<(), ConfigError> {
        let key = |field: &str| format!("trunk[{index}].{field}");
        if self.name.is_empty() {
            return Err(ConfigError::key(key("name"), "a trunk needs a name"));
        }
        for source in &self.sources {
            if source.parse::<ipnet::IpNet>().is_err()
                && source.parse::<std::net::IpAddr>().is_err()
            {
                return Err(ConfigError::key(
                    key("sources"),
                    format!("`{source}` is not a CIDR like 203.0.113.0/24 or an address"),
                ));
            }
        }
        for header in &self.number_from {
            if !["p-called-party-id", "request-uri", "to"].contains(&header.as_str()) {
                return Err(ConfigError::key(
                    key("number_from"),
                    format!("`{header}` is not one of p-called-party-id, request-uri, to"),
                ));
            }
        }
        if !self.default_country.chars().all(|c| c.is_ascii_digit()) {
            return Err(ConfigError::key(
                key("default_country"),
                format!(
                    "`{}` is not a country calling code like 1 or 44",
                    self.default_country
                ),
            ));
        }
        Ok(())
    }
}
