//! `[rtp]` settings.

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// Largest accepted `jitter_max_ms`: beyond one second of buffering a conversation breaks down.
const MAX_JITTER_MS: u32 = 1_000;

/// `[rtp]` section: ports, addresses, jitter buffer and timeouts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RtpConfig {
    /// Lowest UDP port used for RTP (even).
    pub port_min: u16,
    /// Highest UDP port used for RTP.
    pub port_max: u16,
    /// Address media sockets bind to.
    pub bind_addr: String,
    /// Address written into SDP `c=` lines; empty uses the SIP public or local address.
    pub public_addr: String,
    /// Smallest jitter buffer delay, in milliseconds.
    pub jitter_min_ms: u32,
    /// Largest jitter buffer delay, in milliseconds.
    pub jitter_max_ms: u32,
    /// Seconds without RTP after which a call that is not on hold ends with BYE.
    pub media_timeout_secs: u64,
    /// Seconds a released port rests before another call may use it.
    pub port_quarantine_secs: u64,
    /// Accept RTP only from the latched source (overridden per trunk).
    pub strict_source: bool,
    /// Consecutive valid packets from a new address needed to move the latch.
    pub relatch_packets: u32,
    /// Milliseconds after call start or a re-INVITE during which the first valid packet sets
    /// the peer's address.
    pub latch_window_ms: u64,
    /// Milliseconds of silence from the latched peer after which a run of packets from a new
    /// address may take over with a new SSRC.
    pub latch_idle_ms: u64,
}

impl Default for RtpConfig {
    fn default() -> Self {
        Self {
            port_min: 30_000,
            port_max: 39_999,
            bind_addr: "0.0.0.0".into(),
            public_addr: String::new(),
            jitter_min_ms: 20,
            jitter_max_ms: 200,
            media_timeout_secs: 30,
            port_quarantine_secs: 10,
            strict_source: true,
            relatch_packets: 5,
            latch_window_ms: 3_000,
            latch_idle_ms: 5_000,
        }
    }
}

impl RtpConfig {
    /// Checks the section's values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.port_min < 1024 || self.port_min >= self.port_max {
            return Err(ConfigError::key(
                "rtp.port_min",
                format!(
                    "port range {}-{} is invalid; use 1024 <= port_min < port_max",
                    self.port_min, self.port_max
                ),
            ));
        }
        if self.bind_addr.parse::<std::net::IpAddr>().is_err() {
            return Err(ConfigError::key(
                "rtp.bind_addr",
                format!("`{}` is not an IP address", self.bind_addr),
            ));
        }
        if !self.public_addr.is_empty() && self.public_addr.parse::<std::net::IpAddr>().is_err() {
            return Err(ConfigError::key(
                "rtp.public_addr",
                format!("`{}` is not an IP address", self.public_addr),
            ));
        }
        if self.jitter_min_ms > self.jitter_max_ms {
            return Err(ConfigError::key(
                "rtp.jitter_min_ms",
                "jitter_min_ms must not exceed jitter_max_ms",
            ));
        }
        if self.jitter_max_ms > MAX_JITTER_MS {
            return Err(ConfigError::key(
                "rtp.jitter_max_ms",
                format!(
                    "{} ms is more than the {MAX_JITTER_MS} ms a conversation tolerates",
                    self.jitter_max_ms
                ),
            ));
        }
        if self.relatch_packets == 0 {
            return Err(ConfigError::key(
                "rtp.relatch_packets",
                "must be at least 1, or one spoofed packet could move the latch",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(RtpConfig::default().validate().is_ok());
    }

    #[test]
    fn zero_relatch_packets_names_key() {
        let config = RtpConfig {
            relatch_packets: 0,
            ..RtpConfig::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("rtp.relatch_packets"), "{err}");
    }

    #[test]
    fn env_false_turns_strict_source_off() {
        let env = std::collections::BTreeMap::from([(
            "VOICEGATE_RTP_STRICT_SOURCE".to_string(),
            "false".to_string(),
        )]);
        let config = crate::config::Config::from_parts(None, &env).unwrap();
        assert!(!config.rtp.strict_source);
    }

    #[test]
    fn huge_jitter_max_names_key() {
        let config = RtpConfig {
            jitter_max_ms: 5_000,
            ..RtpConfig::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("rtp.jitter_max_ms"), "{err}");
    }
}
