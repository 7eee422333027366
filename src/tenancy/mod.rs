//! Tenants, numbers, limits, call records, transcripts and usage in SQL, and the admin HTTP
//! API. Knows no SIP or RTP: callers hand it dialled numbers and call facts.

mod config;

pub use config::{DatabaseConfig, TenancyConfig};
