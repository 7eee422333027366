//! Server configuration.
//!
//! Settings are layered: the built-in defaults (which `config.toml` at the repository root
//! mirrors key for key), then an optional TOML file, then environment variables named
//! `VOICEGATE_<SECTION>_<KEY>` (for example `VOICEGATE_SIP_UDP`). Every section struct denies
//! unknown fields, so a misspelt key in a file is an error that names it.
//!
//! Rules for section structs, so that every key stays overridable from the environment:
//! section names contain no underscore, every field has a concrete default (no `Option`),
//! and an empty string means "not set".

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::Value;

use crate::ai::{AgentConfig, AiConfig, ProvidersConfig};
use crate::media::MediaConfig;
use crate::rtp::RtpConfig;
use crate::sip::{SipConfig, TrunkConfig};
use crate::tenancy::{DatabaseConfig, TenancyConfig};

/// Prefix of environment variables that override settings.
pub const ENV_PREFIX: &str = "VOICEGATE_";

/// The whole configuration of one voicegate node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Logging.
    pub log: LogConfig,
    /// Node identity and shutdown behaviour.
    pub server: ServerConfig,
    /// HTTP listener for health, metrics and the admin API.
    pub http: HttpConfig,
    /// SIP transports, timers and limits.
    pub sip: SipConfig,
    /// RTP ports, jitter buffer and media timeout.
    pub rtp: RtpConfig,
    /// Codecs, VAD, barge-in and recording.
    pub media: MediaConfig,
    /// Conversation loop: turn taking and the default providers.
    pub ai: AiConfig,
    /// Endpoints, models and keys of the cloud providers.
    pub providers: ProvidersConfig,
    /// The embedded scripted agent.
    pub agent: AgentConfig,
    /// Database connection and the local record spool.
    pub database: DatabaseConfig,
    /// Routing by dialled number and admission.
    pub tenancy: TenancyConfig,
    /// SIP trunks allowed to send calls, matched by source address.
    #[serde(rename = "trunk")]
    pub trunks: Vec<TrunkConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            log: LogConfig::default(),
            server: ServerConfig::default(),
            http: HttpConfig::default(),
            sip: SipConfig::default(),
            rtp: RtpConfig::default(),
            media: MediaConfig::default(),
            ai: AiConfig::default(),
            providers: ProvidersConfig::default(),
            agent: AgentConfig::default(),
            database: DatabaseConfig::default(),
            tenancy: TenancyConfig::default(),
            // With no configuration at all, calls from this machine are accepted.
            trunks: vec![TrunkConfig::default()],
        }
    }
}

/// `[log]` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Filter in `tracing_subscriber::EnvFilter` syntax; `RUST_LOG` wins when set.
    pub level: String,
    /// `text` or `json`.
    pub format: String,
    /// Log phone numbers and transcripts in clear text at info level.
    pub show_private: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: "text".into(),
            show_private: false,
        }
    }
}

/// `[server]` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Name of this node in CDRs and cluster leases; empty means the host name.
    pub node_id: String,
    /// Seconds that active calls may go on after SIGTERM before they are ended with BYE.
    pub drain_secs: u64,
    /// Longest a call may last before it is ended with BYE, in seconds; 0 means no limit.
    pub max_call_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            node_id: String::new(),
            drain_secs: 30,
            max_call_secs: 3_600,
        }
    }
}

/// `[http]` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the HTTP listener; empty disables it.
    pub listen: String,
    /// Bearer token for the admin API; empty disables the admin endpoints.
    pub admin_token: String,
    /// Requests per second allowed for each tenant API key.
    pub tenant_rate_per_sec: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            admin_token: String::new(),
            tenant_rate_per_sec: 20,
        }
    }
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// Path as given.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax {
        /// Path as given.
        path: String,
        /// Parser message with line and column.
        message: String,
    },
    /// A key is unknown or has the wrong type.
    #[error("invalid setting {key}: {message}")]
    Key {
        /// Dotted key, or the environment variable that set it.
        key: String,
        /// What is wrong and what would be accepted.
        message: String,
    },
}

impl ConfigError {
    /// Builds a [`ConfigError::Key`]; used by the sections' `validate` functions.
    pub fn key(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Key {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl Config {
    /// Loads defaults, then `file` if given, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        let text = match file {
            Some(path) => {
                Some(
                    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                        path: path.display().to_string(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        let name = file.map(|p| p.display().to_string()).unwrap_or_default();
        Self::from_parts(text.as_deref().map(|t| (name.as_str(), t)), &env)
    }

    /// Builds a configuration from an optional `(name, TOML text)` and environment overrides.
    pub fn from_parts(
        file: Option<(&str, &str)>,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let mut tree = Value::try_from(Config::default()).expect("defaults serialise to TOML");

        if let Some((path, text)) = file {
            let overlay: Value = toml::from_str(text).map_err(|err| ConfigError::Syntax {
                path: path.to_string(),
                message: err.to_string().trim().to_string(),
            })?;
            merge(&mut tree, overlay);
        }

        for (name, raw) in env {
            apply_env(&mut tree, name, raw)?;
        }

        let config: Config = serde_path_to_error::deserialize(tree).map_err(|err| {
            let key = err.path().to_string();
            ConfigError::key(key, err.into_inner().to_string())
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but cannot work together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !["text", "json"].contains(&self.log.format.as_str()) {
            return Err(ConfigError::key(
                "log.format",
                format!("`{}` is not `text` or `json`", self.log.format),
            ));
        }
        if !self.http.listen.is_empty() && self.http.listen.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(ConfigError::key(
                "http.listen",
                format!(
                    "`{}` is not an address like 127.0.0.1:8080",
                    self.http.listen
                ),
            ));
        }
        self.sip.validate()?;
        for (i, trunk) in self.trunks.iter().enumerate() {
            trunk.validate(i)?;
        }
        self.rtp.validate()?;
        self.media.validate()?;
        self.ai.validate()?;
        self.providers.validate()?;
        self.agent.validate()?;
        self.database.validate()?;
        self.tenancy.validate()?;
        Ok(())
    }

    /// Returns the node name: `server.node_id`, else the host name.
    pub fn node_id(&self) -> String {
        if !self.server.node_id.is_empty() {
            return self.server.node_id.clone();
        }
        std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "voicegate".into())
    }
}

/// Merges `overlay` into `base`: tables merge key by key, everything else is replaced.
fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Table(base), Value::Table(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(slot) => merge(slot, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (slot, value) => *slot = value,
    }
}

/// Applies one `VOICEGATE_<SECTION>_<KEY>` variable. Variables whose section does not exist are
/// left alone (they may belong to scripts), but an unknown key in a known section is an error.
fn apply_env(tree: &mut Value, name: &str, raw: &str) -> Result<(), ConfigError> {
    let rest = name[ENV_PREFIX.len()..].to_ascii_lowercase();
    let Some((section, key)) = rest.split_once('_') else {
        return Ok(());
    };
    let Some(Value::Table(table)) = tree.get_mut(section) else {
        return Ok(());
    };
    let Some(current) = table.get(key) else {
        let known: Vec<_> = table.keys().map(|k| k.to_ascii_uppercase()).collect();
        return Err(ConfigError::key(
            name,
            format!(
                "section [{section}] has no key `{key}`; known keys: {}",
                known.join(", ")
            ),
        ));
    };
    let value = coerce(current, raw).map_err(|message| ConfigError::key(name, message))?;
    table.insert(key.to_string(), value);
    Ok(())
}

/// Parses `raw` as the same TOML type as the default value it replaces.
fn coerce(current: &Value, raw: &str) -> Result<Value, String> {
    let raw = raw.trim();
    match current {
        Value::String(_) => Ok(Value::String(raw.to_string())),
        Value::Integer(_) => raw
            .parse::<i64>()
            .map(Value::Integer)
            .map_err(|_| format!("`{raw}` is not an integer")),
        Value::Float(_) => raw
            .parse::<f64>()
            .map(Value::Float)
            .map_err(|_| format!("`{raw}` is not a number")),
        Value::Boolean(_) => match raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Value::Boolean(true)),
            "false" | "0" | "no" | "off" => Ok(Value::Boolean(false)),
            _ => Err(format!("`{raw}` is not a boolean (use true or false)")),
        },
        Value::Array(items) => {
            let element = items
                .first()
                .cloned()
                .unwrap_or(Value::String(String::new()));
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|item| coerce(&element, item))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        _ => Err("this setting cannot be set from the environment; use the config file".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn repository_config_equals_defaults() {
        let text = include_str!("../config.toml");
        let file = Config::from_parts(Some(("config.toml", text)), &BTreeMap::new())
            .expect("config.toml loads");
        assert_eq!(file, Config::default());
    }

    #[test]
    fn repository_config_sets_every_default_key() {
        let text = include_str!("../config.toml");
        let file: Value = toml::from_str(text).expect("config.toml parses");
        let defaults = Value::try_from(Config::default()).expect("defaults serialise");
        let Value::Table(sections) = defaults else {
            panic!("defaults are a table")
        };
        for (section, keys) in sections {
            let Value::Table(keys) = keys else { continue };
            for key in keys.keys() {
                assert!(
                    file.get(&section).and_then(|s| s.get(key)).is_some(),
                    "config.toml lacks [{section}] {key}"
                );
            }
        }
    }

    #[test]
    fn env_overrides_typed_values() {
        let config = Config::from_parts(
            None,
            &env(&[
                ("VOICEGATE_SIP_UDP", "127.0.0.1:5099"),
                ("VOICEGATE_SERVER_DRAIN_SECS", "7"),
                ("VOICEGATE_LOG_SHOW_PRIVATE", "true"),
            ]),
        )
        .expect("valid");
        assert_eq!(config.sip.udp, "127.0.0.1:5099");
        assert_eq!(config.server.drain_secs, 7);
        assert!(config.log.show_private);
    }

    #[test]
    fn env_reads_false_as_false() {
        let config =
            Config::from_parts(None, &env(&[("VOICEGATE_LOG_SHOW_PRIVATE", "false")])).unwrap();
        assert!(!config.log.show_private);
    }

    #[test]
    fn env_rejects_bad_integer_naming_variable() {
        let err = Config::from_parts(None, &env(&[("VOICEGATE_SERVER_DRAIN_SECS", "soon")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("VOICEGATE_SERVER_DRAIN_SECS"), "{err}");
        assert!(err.contains("soon"), "{err}");
    }

    #[test]
    fn env_rejects_unknown_key_in_known_section() {
        let err = Config::from_parts(None, &env(&[("VOICEGATE_SIP_UPD", "x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("VOICEGATE_SIP_UPD"), "{err}");
    }

    #[test]
    fn env_ignores_unknown_section() {
        assert!(Config::from_parts(None, &env(&[("VOICEGATE_TEST_THING", "x")])).is_ok());
    }

    #[test]
    fn file_unknown_key_names_path() {
        let err = Config::from_parts(Some(("f.toml", "[rtp]\nport_mni = 3\n")), &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("rtp"), "{err}");
        assert!(err.contains("port_mni"), "{err}");
    }

    #[test]
    fn file_wrong_type_names_key() {
        let err = Config::from_parts(
            Some(("f.toml", "[server]\ndrain_secs = \"x\"\n")),
            &BTreeMap::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("server.drain_secs"), "{err}");
    }

    #[test]
    fn file_syntax_error_names_file() {
        let err = Config::from_parts(Some(("f.toml", "[server\n")), &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("f.toml"), "{err}");
    }

    #[test]
    fn bad_listen_address_rejected() {
        let err = Config::from_parts(None, &env(&[("VOICEGATE_HTTP_LISTEN", "localhost")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("http.listen"), "{err}");
    }
}
