//! The HTTP listener: `/healthz`, `/metrics` and the admin API under `/v1/`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::observability::{Health, render_metrics};

/// Builds the router: health and metrics, plus `api` nested under `/v1`.
pub fn router(health: Arc<Health>, api: Option<Router>) -> Router {
    let base = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(health);
    match api {
        Some(api) => base.nest("/v1", api),
        None => base,
    }
}

async fn healthz(State(health): State<Arc<Health>>) -> Response {
    match health.check() {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(problems) => {
            let body = problems.join("\n") + "\n";
            (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
        }
    }
}

async fn metrics() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render_metrics(),
    )
        .into_response()
}

/// Binds `listen` and serves `router` until `shutdown` is cancelled. Returns the bound address
/// once listening, and the task that serves.
pub async fn serve(
    listen: &str,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let result = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(err) = result {
            tracing::error!(cause = %err, "http listener failed");
        }
    });
    tracing::info!(%addr, "http listening");
    Ok((addr, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get_text(addr: SocketAddr, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    #[tokio::test]
    async fn healthz_reports_reasons_then_ok() {
        let health = Arc::new(Health::default());
        let shutdown = CancellationToken::new();
        let (addr, task) = serve(
            "127.0.0.1:0",
            router(health.clone(), None),
            shutdown.clone(),
        )
        .await
        .unwrap();

        let (status, body) = get_text(addr, "/healthz").await;
        assert_eq!(status, 503);
        assert!(body.contains("sip: listeners not bound"), "{body}");

        health.set_sip_ready(true);
        health.set_media_ready(true);
        health.set_database(Ok(()));
        let (status, _) = get_text(addr, "/healthz").await;
        assert_eq!(status, 200);

        health.set_draining();
        let (status, body) = get_text(addr, "/healthz").await;
        assert_eq!(status, 503);
        assert!(body.contains("draining"), "{body}");

        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn metrics_serves_prometheus_text() {
        let counter = prometheus::register_int_counter!(
            "voicegate_http_test_total",
            "Counter registered by the metrics endpoint test."
        )
        .unwrap();
        counter.inc();
        let shutdown = CancellationToken::new();
        let health = Arc::new(Health::default());
        let (addr, task) = serve("127.0.0.1:0", router(health, None), shutdown.clone())
            .await
            .unwrap();
        let (status, body) = get_text(addr, "/metrics").await;
        assert_eq!(status, 200);
        assert!(body.contains("voicegate_http_test_total 1"), "{body}");
        shutdown.cancel();
        task.await.unwrap();
    }
}
