//! Integration tests of the tenancy layer against real SQLite and PostgreSQL databases.
//!
//! PostgreSQL is read from `VOICEGATE_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/test`, a superuser); each test creates its own database
//! and role and drops both when it ends.

#[path = "tenancy/admission.rs"]
mod admission;
#[path = "tenancy/api.rs"]
mod api;
#[path = "tenancy/cli.rs"]
mod cli;
#[path = "tenancy/cluster.rs"]
mod cluster;
#[path = "tenancy/common.rs"]
mod common;
#[path = "tenancy/isolation.rs"]
mod isolation;
#[path = "tenancy/records.rs"]
mod records;
#[path = "tenancy/routing.rs"]
mod routing;
