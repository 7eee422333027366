//! The admin HTTP API, mounted by the server under `/v1/`.
//!
//! The admin token (`[http] admin_token`) manages tenants, numbers and keys under `/tenants`.
//! A tenant API key reads that tenant's own calls, usage, numbers and live events. Errors are
//! RFC 9457 problem details. `openapi.json` beside this file describes every route, and a test
//! keeps the two in step.

mod admin;
mod auth;
mod body;
mod problem;
mod rate;
mod tenant;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::handler::Handler;
use axum::http::{Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post};

pub use problem::Problem;

use super::metrics;
use super::{EventBus, Store};
use crate::config::HttpConfig;
use rate::RateLimiter;

/// The OpenAPI 3.1 description of this API, served at `/v1/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

/// State shared by the API handlers.
#[derive(Debug, Clone)]
pub struct ApiState {
    store: Store,
    bus: EventBus,
    admin_token: Arc<str>,
    rate_per_sec: u32,
    limiter: Arc<RateLimiter>,
}

impl ApiState {
    /// State for `router`: the store, the bus the call layer publishes into, and the `[http]`
    /// settings (admin token, per-tenant rate).
    pub fn new(store: Store, bus: EventBus, http: &HttpConfig) -> ApiState {
        ApiState {
            store,
            bus,
            admin_token: Arc::from(http.admin_token.as_str()),
            rate_per_sec: http.tenant_rate_per_sec,
            limiter: Arc::new(RateLimiter::new(http.tenant_rate_per_sec)),
        }
    }
}

/// Builds the API routes, to be nested under `/v1` by the HTTP server.
pub fn router(state: ApiState) -> Router {
    routes()
        .router
        .fallback(|| async { Problem::new(axum::http::StatusCode::NOT_FOUND, "no such route") })
        .layer(middleware::from_fn(count_requests))
        .with_state(state)
}

/// A router together with the list of its routes, so the OpenAPI test can compare them.
struct RouteTable {
    router: Router<ApiState>,
    entries: Vec<(Method, &'static str)>,
}

impl RouteTable {
    fn add(mut self, method: Method, path: &'static str, route: MethodRouter<ApiState>) -> Self {
        self.entries.push((method, path));
        self.router = self.router.route(path, route);
        self
    }

    fn get<H: Handler<T, ApiState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add(Method::GET, path, get(handler))
    }

    fn post<H: Handler<T, ApiState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add(Method::POST, path, post(handler))
    }

    fn patch<H: Handler<T, ApiState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add(Method::PATCH, path, patch(handler))
    }

    fn delete<H: Handler<T, ApiState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add(Method::DELETE, path, delete(handler))
    }
}

fn routes() -> RouteTable {
    let table = RouteTable {
        router: Router::new(),
        entries: Vec::new(),
    };
    table
        .get("/openapi.json", openapi)
        .get("/tenants", admin::list_tenants)
        .post("/tenants", admin::create_tenant)
        .get("/tenants/{tenant}", admin::get_tenant)
        .patch("/tenants/{tenant}", admin::patch_tenant)
        .get("/tenants/{tenant}/numbers", admin::list_numbers)
        .post("/tenants/{tenant}/numbers", admin::add_number)
        .delete("/tenants/{tenant}/numbers/{number}", admin::remove_number)
        .get("/tenants/{tenant}/keys", admin::list_keys)
        .post("/tenants/{tenant}/keys", admin::create_key)
        .delete("/tenants/{tenant}/keys/{key}", admin::revoke_key)
        .get("/tenant", tenant::own_tenant)
        .get("/calls", tenant::list_calls)
        .get("/calls/{id}", tenant::get_call)
        .get("/usage", tenant::usage)
        .get("/numbers", tenant::numbers)
        .get("/events", tenant::events)
}

async fn openapi() -> Response {
    let mut response = OPENAPI_JSON.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

async fn count_requests(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    metrics::API_REQUESTS
        .with_label_values(&[response.status().as_str()])
        .inc();
    response
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn described_routes() -> BTreeSet<(String, String)> {
        let spec: serde_json::Value = serde_json::from_str(OPENAPI_JSON).expect("valid JSON");
        let paths = spec["paths"].as_object().expect("paths object");
        paths
            .iter()
            .flat_map(|(path, item)| {
                let methods = item.as_object().expect("path item object");
                methods
                    .keys()
                    .filter(|key| ["get", "post", "patch", "delete", "put"].contains(&key.as_str()))
                    .map(|method| (method.to_uppercase(), path.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn openapi_describes_every_route() {
        let served: BTreeSet<(String, String)> = routes()
            .entries
            .into_iter()
            .map(|(method, path)| (method.to_string(), path.to_string()))
            .collect();
        let described = described_routes();
        let undocumented: Vec<_> = served.difference(&described).collect();
        let unserved: Vec<_> = described.difference(&served).collect();
        assert!(
            undocumented.is_empty(),
            "routes missing from openapi.json: {undocumented:?}"
        );
        assert!(
            unserved.is_empty(),
            "openapi.json describes no such route: {unserved:?}"
        );
    }

    #[test]
    fn openapi_operations_have_responses() {
        let spec: serde_json::Value = serde_json::from_str(OPENAPI_JSON).unwrap();
        assert_eq!(spec["openapi"], "3.1.0");
        assert_eq!(spec["servers"][0]["url"], "/v1");
        for (method, path) in described_routes() {
            let operation = &spec["paths"][&path][method.to_lowercase()];
            assert!(
                operation["operationId"].is_string(),
                "{method} {path} has no operationId"
            );
            assert!(
                operation["responses"]
                    .as_object()
                    .is_some_and(|r| !r.is_empty()),
                "{method} {path} lists no responses"
            );
        }
    }

    #[test]
    fn openapi_references_resolve() {
        let spec: serde_json::Value = serde_json::from_str(OPENAPI_JSON).unwrap();
        let mut references = Vec::new();
        collect_refs(&spec, &mut references);
        assert!(!references.is_empty());
        for reference in references {
            let pointer = reference.trim_start_matches('#');
            assert!(spec.pointer(pointer).is_some(), "dangling $ref {reference}");
        }
    }

    fn collect_refs(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, child) in map {
                    if key == "$ref" {
                        if let Some(text) = child.as_str() {
                            out.push(text.to_string());
                        }
                    } else {
                        collect_refs(child, out);
                    }
                }
            }
            serde_json::Value::Array(items) => {
                items.iter().for_each(|item| collect_refs(item, out))
            }
            _ => {}
        }
    }
}
