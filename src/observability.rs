//! Logging setup, redaction of private data, the health state behind `/healthz` and the
//! Prometheus text exposition behind `/metrics`.
//!
//! Metrics are registered in the `prometheus` crate's default registry by the module that owns
//! them (for example `sip::metrics`), so no layer depends on another to count.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use tracing_subscriber::EnvFilter;

use crate::config::LogConfig;

static SHOW_PRIVATE: AtomicBool = AtomicBool::new(false);

/// Installs the global tracing subscriber. `RUST_LOG` overrides `log.level`. Safe to call more
/// than once: later calls only update the redaction switch.
pub fn init_logging(config: &LogConfig) {
    SHOW_PRIVATE.store(config.show_private, Ordering::Relaxed);
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if config.format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Sets whether [`Private`] values print in clear text.
pub fn set_show_private(show: bool) {
    SHOW_PRIVATE.store(show, Ordering::Relaxed);
}

/// A phone number, transcript or other personal value that logs show only when
/// `log.show_private` is set. Otherwise numbers keep their first four characters and texts only
/// their length.
pub struct Private<'a>(pub &'a str);

impl fmt::Display for Private<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if SHOW_PRIVATE.load(Ordering::Relaxed) {
            return f.write_str(self.0);
        }
        let looks_like_number = self
            .0
            .chars()
            .all(|c| c.is_ascii_digit() || "+-(). ".contains(c));
        if looks_like_number && !self.0.is_empty() {
            let head: String = self.0.chars().take(4).collect();
            write!(f, "{head}***")
        } else {
            write!(f, "<{} chars>", self.0.chars().count())
        }
    }
}

/// Readiness of the parts `/healthz` reports on.
#[derive(Debug, Default)]
pub struct Health {
    sip: AtomicBool,
    media: AtomicBool,
    draining: AtomicBool,
    database_error: Mutex<Option<String>>,
    database_checked: AtomicBool,
}

impl Health {
    /// Marks the SIP listeners as bound.
    pub fn set_sip_ready(&self, ready: bool) {
        self.sip.store(ready, Ordering::Relaxed);
    }

    /// Marks the media workers as running.
    pub fn set_media_ready(&self, ready: bool) {
        self.media.store(ready, Ordering::Relaxed);
    }

    /// Records the result of the latest database check.
    pub fn set_database(&self, result: Result<(), String>) {
        *self.database_error.lock() = result.err();
        self.database_checked.store(true, Ordering::Relaxed);
    }

    /// Marks the node as draining after SIGTERM.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Whether the node is draining.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Returns `Ok` when everything is ready, else the reasons it is not.
    pub fn check(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.draining.load(Ordering::Relaxed) {
            problems.push("draining: shutting down, not taking new calls".to_string());
        }
        if !self.sip.load(Ordering::Relaxed) {
            problems.push("sip: listeners not bound".to_string());
        }
        if !self.media.load(Ordering::Relaxed) {
            problems.push("media: workers not running".to_string());
        }
        if !self.database_checked.load(Ordering::Relaxed) {
            problems.push("database: not checked yet".to_string());
        } else if let Some(err) = self.database_error.lock().as_ref() {
            problems.push(format!("database: {err}"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// Renders every registered metric in the Prometheus text format.
pub fn render_metrics() -> String {
    use prometheus::Encoder;
    let families = prometheus::gather();
    let mut out = Vec::new();
    // Encoding into a Vec cannot fail for well-formed families.
    let _ = prometheus::TextEncoder::new().encode(&families, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_number_is_masked() {
        set_show_private(false);
        assert_eq!(Private("+12025550142").to_string(), "+120***");
        assert_eq!(Private("what are your hours").to_string(), "<19 chars>");
    }

    #[test]
    fn health_lists_every_problem() {
        let health = Health::default();
        let problems = health.check().unwrap_err();
        assert_eq!(problems.len(), 3);
        health.set_sip_ready(true);
        health.set_media_ready(true);
        health.set_database(Ok(()));
        assert!(health.check().is_ok());
        health.set_database(Err("connection refused".into()));
        assert_eq!(
            health.check().unwrap_err(),
            vec!["database: connection refused"]
        );
    }
}
