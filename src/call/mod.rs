//! One call's life: ties a SIP dialog, an RTP session, the media pipeline, the AI loop and
//! the tenant's admission together.
//!
//! ```text
//! SipServer ──IncomingCall──▶ inbound::handle: dialled number → tenant admission → ring
//!     → RTP port → 200 OK ──ActiveCall──▶ running::run: MediaSession + conversation loop
//!     → BYE, CDR, slot release
//! ```

mod active;
mod inbound;
pub mod metrics;
mod running;
pub mod settings;

use std::sync::Arc;

use tokio::sync::mpsc;

pub use active::ActiveCalls;
pub use settings::CallSettings;

use crate::ai::conversation::ProviderChains;
use crate::ai::provider::ProviderError;
use crate::config::Config;
use crate::media::engine::MediaEngine;
use crate::sip::IncomingCall;
use crate::tenancy::{EventBus, ProviderKeys, Store};

/// Builds the provider chains of one call from its settings and the tenant's keys.
pub trait ProviderSource: Send + Sync {
    /// The chains named in `settings`, with the tenant's keys where it has them.
    fn chains(
        &self,
        settings: &CallSettings,
        keys: &ProviderKeys,
    ) -> Result<ProviderChains, ProviderError>;
}

/// What every call of this node shares.
pub struct CallContext {
    /// Server configuration.
    pub config: Arc<Config>,
    /// Tenants, admission and records.
    pub store: Store,
    /// Media workers.
    pub media: MediaEngine,
    /// Provider clients.
    pub providers: Arc<dyn ProviderSource>,
    /// Live events per tenant.
    pub events: EventBus,
    /// Calls in progress, for draining.
    pub calls: ActiveCalls,
}

/// Handles offered calls until the SIP server stops. Each call runs in its own task.
pub async fn accept_calls(context: Arc<CallContext>, mut incoming: mpsc::Receiver<IncomingCall>) {
    while let Some(call) = incoming.recv().await {
        tokio::spawn(inbound::handle(Arc::clone(&context), call));
    }
    tracing::debug!("incoming call stream closed");
}
