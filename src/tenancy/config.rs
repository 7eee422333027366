//! `[database]` and `[tenancy]` settings.

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// `[database]` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite:FILE` (created when missing) or `postgres://user@host/db`.
    pub url: String,
    /// Pooled connections.
    pub max_connections: u32,
    /// Directory where records wait while the database is unavailable.
    pub spool_dir: String,
    /// Queries slower than this are logged, in milliseconds.
    pub slow_query_ms: u64,
    /// Longest a database operation may take before it fails, in milliseconds: admission then
    /// rejects calls with 503 and call records go to the spool.
    pub timeout_ms: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "sqlite:voicegate.db".into(),
            max_connections: 10,
            spool_dir: "spool".into(),
            slow_query_ms: 200,
            timeout_ms: 3_000,
        }
    }
}

impl DatabaseConfig {
    /// Checks the section's values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let known = ["sqlite:", "postgres://", "postgresql://"];
        if !known.iter().any(|p| self.url.starts_with(p)) {
            return Err(ConfigError::key(
                "database.url",
                "use sqlite:FILE or postgres://user@host/database",
            ));
        }
        if self.url.starts_with("sqlite:")
            && (self.url.contains(":memory:") || self.url.contains("mode=memory"))
        {
            // Every pooled connection would open its own empty in-memory database.
            return Err(ConfigError::key(
                "database.url",
                "an in-memory SQLite database cannot be shared by the pool; use sqlite:FILE",
            ));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::key(
                "database.max_connections",
                "use 1 or more",
            ));
        }
        if self.timeout_ms < 100 {
            return Err(ConfigError::key(
                "database.timeout_ms",
                format!("{} is too short; use 100 or more", self.timeout_ms),
            ));
        }
        if self.spool_dir.is_empty() {
            return Err(ConfigError::key(
                "database.spool_dir",
                "set a directory for records that wait while the database is unavailable",
            ));
        }
        Ok(())
    }
}

/// `[tenancy]` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TenancyConfig {
    /// Tenant that takes calls to numbers no tenant owns; empty answers them with 404.
    pub default_tenant: String,
    /// Response when a tenant is at its concurrency limit: `busy` (486) or `unavailable` (503).
    pub over_limit: String,
    /// Retry-After seconds sent with 503.
    pub retry_after_secs: u32,
    /// Seconds a node's call slot lease lives without a heartbeat.
    pub lease_secs: u64,
}

impl Default for TenancyConfig {
    fn default() -> Self {
        Self {
            default_tenant: "default".into(),
            over_limit: "busy".into(),
            retry_after_secs: 30,
            lease_secs: 30,
        }
    }
}

impl TenancyConfig {
    /// Checks the section's values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !["busy", "unavailable"].contains(&self.over_limit.as_str()) {
            return Err(ConfigError::key(
                "tenancy.over_limit",
                format!("`{}` is not `busy` or `unavailable`", self.over_limit),
            ));
        }
        if self.lease_secs < 3 {
            return Err(ConfigError::key("tenancy.lease_secs", "use 3 or more"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(err: ConfigError) -> String {
        match err {
            ConfigError::Key { key, .. } => key,
            other => panic!("expected a key error, got {other}"),
        }
    }

    #[test]
    fn defaults_are_valid() {
        assert!(DatabaseConfig::default().validate().is_ok());
        assert!(TenancyConfig::default().validate().is_ok());
    }

    #[test]
    fn database_errors_name_the_key() {
        let cases = [
            (
                DatabaseConfig {
                    url: "mysql://db".into(),
                    ..DatabaseConfig::default()
                },
                "database.url",
            ),
            (
                DatabaseConfig {
                    url: "sqlite::memory:".into(),
                    ..DatabaseConfig::default()
                },
                "database.url",
            ),
            (
                DatabaseConfig {
                    max_connections: 0,
                    ..DatabaseConfig::default()
                },
                "database.max_connections",
            ),
            (
                DatabaseConfig {
                    timeout_ms: 10,
                    ..DatabaseConfig::default()
                },
                "database.timeout_ms",
            ),
            (
                DatabaseConfig {
                    spool_dir: String::new(),
                    ..DatabaseConfig::default()
                },
                "database.spool_dir",
            ),
        ];
        for (config, key) in cases {
            assert_eq!(key_of(config.validate().unwrap_err()), key);
        }
    }

    #[test]
    fn tenancy_errors_name_the_key() {
        let over_limit = TenancyConfig {
            over_limit: "drop".into(),
            ..TenancyConfig::default()
        };
        assert_eq!(
            key_of(over_limit.validate().unwrap_err()),
            "tenancy.over_limit"
        );
        let lease = TenancyConfig {
            lease_secs: 2,
            ..TenancyConfig::default()
        };
        assert_eq!(key_of(lease.validate().unwrap_err()), "tenancy.lease_secs");
    }
}
