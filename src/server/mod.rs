//! `voicegate serve`: starts SIP, media, the AI loop and HTTP, and stops them in order.
//!
//! Start: database (migrations, default tenant) → media workers → AI providers (the Whisper
//! helper loads its model) → SIP listeners → HTTP. Shutdown on SIGTERM or SIGINT: `/healthz`
//! turns 503 and new INVITEs get 503, active calls may finish for `server.drain_secs`, the
//! rest are ended with BYE, then SIP, HTTP and the database close.

pub mod http;
mod providers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::call::{self, ActiveCalls, CallContext};
use crate::config::Config;
use crate::media::engine::MediaEngine;
use crate::observability::Health;
use crate::sip::{SipHandle, SipServer, Transport};
use crate::tenancy::{self, ApiState, EventBus, Store};

pub use providers::Providers;

/// How often the database health check runs.
const DATABASE_CHECK: Duration = Duration::from_secs(5);
/// Time the BYEs sent at the end of a drain get before SIP stops.
const BYE_GRACE: Duration = Duration::from_secs(2);

/// A running voicegate node.
pub struct Node {
    config: Arc<Config>,
    store: Store,
    sip: SipHandle,
    health: Arc<Health>,
    calls: ActiveCalls,
    providers: Arc<Providers>,
    http_addr: Option<SocketAddr>,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    _media: MediaEngine,
}

impl Node {
    /// Starts every part of the node; returns once SIP and HTTP listen.
    pub async fn start(config: Config) -> anyhow::Result<Node> {
        let config = Arc::new(config);
        register_metrics();
        let health = Arc::new(Health::default());
        let stop = CancellationToken::new();

        let store = Store::connect(&config.database, &config.tenancy, &config.node_id())
            .await
            .context("opening the database")?;
        store.migrate().await.context("applying migrations")?;
        store
            .ensure_default_tenant()
            .await
            .context("creating the default tenant")?;
        health.set_database(Ok(()));

        let media = MediaEngine::start(&config.rtp, &config.media).context("starting media")?;
        health.set_media_ready(true);

        let providers = Arc::new(Providers::new(&config).context("building AI providers")?);
        providers.warm_up().await;

        let (sip, incoming) = SipServer::start(&config.sip, &config.trunks)
            .await
            .context("starting SIP")?;
        health.set_sip_ready(true);

        let events = EventBus::new();
        let calls = ActiveCalls::default();
        let context = Arc::new(CallContext {
            config: Arc::clone(&config),
            store: store.clone(),
            media: media.clone(),
            providers: Arc::clone(&providers) as Arc<dyn call::ProviderSource>,
            events: events.clone(),
            calls: calls.clone(),
        });
        let mut tasks = vec![
            tokio::spawn(call::accept_calls(context, incoming)),
            tokio::spawn(watch_database(
                store.clone(),
                Arc::clone(&health),
                stop.clone(),
            )),
        ];

        let http_addr = if config.http.listen.is_empty() {
            None
        } else {
            let api = tenancy::router(ApiState::new(store.clone(), events, &config.http));
            let router = http::router(Arc::clone(&health), Some(api));
            let (addr, task) = http::serve(&config.http.listen, router, stop.clone())
                .await
                .with_context(|| format!("binding http.listen {}", config.http.listen))?;
            tasks.push(task);
            Some(addr)
        };

        tracing::info!(
            node = %config.node_id(),
            database = store.backend_name(),
            "voicegate ready"
        );
        Ok(Node {
            config,
            store,
            sip,
            health,
            calls,
            providers,
            http_addr,
            stop,
            tasks,
            _media: media,
        })
    }

    /// Address of a SIP listener.
    pub fn sip_addr(&self, transport: Transport) -> Option<SocketAddr> {
        self.sip.local_addr(transport)
    }

    /// Address of the HTTP listener.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Drains and stops the node: new calls get 503, active calls get `server.drain_secs` to
    /// finish, the rest are ended with BYE.
    pub async fn shutdown(self) {
        let drain = Duration::from_secs(self.config.server.drain_secs);
        self.health.set_draining();
        self.sip.set_draining(true);
        let active = self.calls.len();
        tracing::info!(active, drain_secs = drain.as_secs(), "draining");
        let left = self.calls.wait_empty(drain).await;
        if left > 0 {
            let ended = self
                .calls
                .hangup_all("SIP;cause=503;text=\"Server shutting down\"");
            tracing::info!(ended, "ending calls left after the drain");
            // Give the calls time to send BYE and write their records.
            self.calls.wait_empty(BYE_GRACE * 5).await;
        }
        self.sip.shutdown().await;
        self.stop.cancel();
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
        self.providers.shutdown().await;
        self.store.close().await;
        tracing::info!("voicegate stopped");
    }
}

/// Creates the node's metrics so `/metrics` lists them before the first call.
fn register_metrics() {
    call::metrics::register();
    crate::media::metrics::register();
    crate::rtp::register_metrics();
    crate::ai::metrics::register();
}

/// Checks the database every few seconds for `/healthz`.
async fn watch_database(store: Store, health: Arc<Health>, stop: CancellationToken) {
    let mut interval = tokio::time::interval(DATABASE_CHECK);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = interval.tick() => {}
        }
        let result = store.health().await.map_err(|error| error.to_string());
        if let Err(error) = &result {
            tracing::warn!(%error, "database check failed");
        }
        health.set_database(result);
    }
}

/// Runs the server until SIGTERM or SIGINT, then drains.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let node = Node::start(config).await?;
    wait_for_signal().await;
    node.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    match (terminate, interrupt) {
        (Ok(mut terminate), Ok(mut interrupt)) => {
            tokio::select! {
                _ = terminate.recv() => tracing::info!("SIGTERM received"),
                _ = interrupt.recv() => tracing::info!("SIGINT received"),
            }
        }
        _ => {
            tracing::warn!("cannot watch signals; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
