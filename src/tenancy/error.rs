//! Errors of the tenancy layer.

/// A failure of a tenancy operation.
#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    /// The database failed or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A database operation took longer than `database.timeout_ms`.
    #[error("database operation `{0}` timed out")]
    Timeout(&'static str),
    /// A named object does not exist (or belongs to another tenant).
    #[error("{kind} `{key}` not found")]
    NotFound {
        /// Kind of object looked up: `tenant`, `number`, `key`, `call`.
        kind: &'static str,
        /// The name, number or id that was looked up.
        key: String,
    },
    /// The change would break a uniqueness rule, such as a number owned by another tenant.
    #[error("{0}")]
    Conflict(String),
    /// An input value is invalid.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// Dotted name of the field or argument.
        field: String,
        /// The problem with the value and what would be accepted.
        message: String,
    },
    /// Reading or writing the record spool failed.
    #[error("record spool {path}: {source}")]
    Spool {
        /// File or directory involved.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl TenancyError {
    /// Builds a [`TenancyError::Invalid`].
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        TenancyError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Builds a [`TenancyError::NotFound`].
    pub fn not_found(kind: &'static str, key: impl Into<String>) -> Self {
        TenancyError::NotFound {
            kind,
            key: key.into(),
        }
    }

    /// Whether retrying later may succeed: the database is unreachable, restarting, overloaded
    /// or locked, as opposed to rejecting the data itself.
    pub fn is_transient(&self) -> bool {
        match self {
            TenancyError::Database(err) => is_transient_sqlx(err),
            TenancyError::Timeout(_) => true,
            _ => false,
        }
    }
}

fn is_transient_sqlx(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // PostgreSQL SQLSTATE classes (Appendix A of its manual): 08 connection exception,
            // 53 insufficient resources, 57P0x operator intervention (shutdown, restart),
            // 40001/40P01 serialization failure and deadlock. SQLite: 5 BUSY, 6 LOCKED
            // (extended codes keep the primary code in the low byte).
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P0")
                || code == "40001"
                || code == "40P01"
                || code
                    .parse::<i32>()
                    .is_ok_and(|primary| matches!(primary & 0xff, 5 | 6))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_timeout_is_transient() {
        assert!(TenancyError::Database(sqlx::Error::PoolTimedOut).is_transient());
        assert!(TenancyError::Timeout("admit").is_transient());
    }

    #[test]
    fn row_not_found_is_not_transient() {
        assert!(!TenancyError::Database(sqlx::Error::RowNotFound).is_transient());
        assert!(!TenancyError::invalid("name", "empty").is_transient());
    }

    #[test]
    fn messages_name_the_value() {
        assert_eq!(
            TenancyError::not_found("tenant", "acme").to_string(),
            "tenant `acme` not found"
        );
        assert_eq!(
            TenancyError::invalid("settings.voice", "too long").to_string(),
            "invalid settings.voice: too long"
        );
    }
}
