//! Tenants, numbers, limits, call records, transcripts and usage in SQL, and the admin HTTP
//! API. Knows no SIP or RTP: callers hand it dialled numbers and call facts.
//!
//! The call layer's path through this module, per INVITE:
//!
//! 1. [`resolve_dialled`] finds the dialled number in E.164 from the Request-URI, To and
//!    P-Called-Party-ID, in the order the trunk sets.
//! 2. [`Store::route_and_admit`] finds the tenant (or the default tenant) and admits the call
//!    against its status and limits, returning a [`CallSlot`] or a [`Rejection`] that maps
//!    straight to a SIP response.
//! 3. While the call runs, [`EventBus::publish`] feeds the tenant's live event stream.
//! 4. When it ends, [`CallSlot::release`] frees the slot and [`Store::record_call`] writes the
//!    CDR, turns and usage (or spools them while the database is down).

mod admission;
mod api;
mod config;
mod dialled;
mod error;
mod events;
mod metrics;
mod model;
mod number;
mod record;
mod settings;
mod spool;
mod store;
mod throttle;

pub use admission::{Admission, CallSlot, RejectReason, Rejection};
pub use api::{ApiState, OPENAPI_JSON, Problem, router};
pub use config::{DatabaseConfig, TenancyConfig};
pub use dialled::{Dialled, NumberSource, NumberSources, resolve_dialled};
pub use error::TenancyError;
pub use events::{CHANNEL_CAPACITY, EventBus, LiveEvent, LiveEventKind};
pub use model::{
    ApiKeyInfo, CreatedApiKey, NewTenant, PhoneNumber, Tenant, TenantId, TenantLimits, TenantPatch,
    TenantStatus, TenantView, validate_tenant_name,
};
pub use number::normalize_number;
pub use record::{
    CallDetail, CallQuery, CallRecord, CallSummary, StoredTurn, TurnRecord, TurnRole, UsageDay,
};
pub use settings::{KEYED_PROVIDERS, ProviderKeys, TenantSettings};
pub use store::{AuthenticatedKey, Store};
