//! The admin HTTP API served on a real socket: authentication, tenant isolation, errors as
//! problem details, rate limiting and the live event stream.

use std::time::Duration;

use futures::StreamExt;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use voicegate::config::HttpConfig;
use voicegate::tenancy::{
    ApiState, EventBus, LiveEvent, LiveEventKind, OPENAPI_JSON, Store, TurnRole, router,
};

use super::common::{
    Backend, Proxy, TestDb, both_backends, pg_target, sample_record, through_proxy,
};

const ADMIN: &str = "admin-secret-token";

struct Server {
    base: String,
    client: Client,
    store: Store,
    bus: EventBus,
    _db: TestDb,
}

impl Server {
    async fn start(backend: Backend, rate_per_sec: u32, admin_token: &str) -> Server {
        let db = TestDb::new(backend).await;
        let store = db.plain_store().await;
        let bus = EventBus::new();
        let http = HttpConfig {
            admin_token: admin_token.into(),
            tenant_rate_per_sec: rate_per_sec,
            ..HttpConfig::default()
        };
        let app = axum::Router::new().nest(
            "/v1",
            router(ApiState::new(store.clone(), bus.clone(), &http)),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/v1", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Server {
            base,
            client: Client::new(),
            store,
            bus,
            _db: db,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(ADMIN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        into_parts(request.send().await.unwrap()).await
    }

    async fn tenant_get(&self, key: &str, path: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        into_parts(response).await
    }

    /// Creates tenants `alpha` and `beta` with one number and one key each; returns the keys.
    async fn two_tenants(&self) -> (String, String) {
        let mut keys = Vec::new();
        for (name, number) in [("alpha", "+12025550100"), ("beta", "+12025550111")] {
            let (status, _) = self
                .admin(
                    reqwest::Method::POST,
                    "/tenants",
                    Some(json!({"name": name})),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED);
            let (status, _) = self
                .admin(
                    reqwest::Method::POST,
                    &format!("/tenants/{name}/numbers"),
                    Some(json!({"number": number})),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED);
            let (status, key) = self
                .admin(
                    reqwest::Method::POST,
                    &format!("/tenants/{name}/keys"),
                    Some(json!({"name": "dashboard"})),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED);
            keys.push(key["key"].as_str().unwrap().to_string());
        }
        (keys[0].clone(), keys[1].clone())
    }
}

async fn into_parts(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

async fn admin_manages_tenants(backend: Backend) {
    let server = Server::start(backend, 100, ADMIN).await;
    let post = reqwest::Method::POST;

    let created = json!({
        "name": "bakery",
        "plan": "starter",
        "limits": {"max_concurrent_calls": 4, "monthly_calls": 1000},
        "settings": {"greeting": "Corner Bakery, hello!", "tts": ["espeak"], "language": "en-US"},
        "provider_keys": {"openai": "sk-test-secret-value"}
    });
    let (status, tenant) = server.admin(post.clone(), "/tenants", Some(created)).await;
    assert_eq!(status, StatusCode::CREATED, "{tenant}");
    assert_eq!(tenant["name"], "bakery");
    assert_eq!(tenant["limits"]["max_concurrent_calls"], 4);
    assert_eq!(tenant["settings"]["greeting"], "Corner Bakery, hello!");
    assert_eq!(tenant["provider_keys_set"], json!(["openai"]));
    assert!(!tenant.to_string().contains("sk-test-secret-value"));

    let (status, problem) = server
        .admin(post.clone(), "/tenants", Some(json!({"name": "bakery"})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem["status"], 409);

    let bad_limit = json!({"name": "x", "limits": {"max_concurrent_calls": "many"}});
    let (status, problem) = server
        .admin(post.clone(), "/tenants", Some(bad_limit))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem["field"], "limits.max_concurrent_calls");
    let bad_setting = json!({"name": "y", "settings": {"stt": ["sphinx"]}});
    let (status, problem) = server
        .admin(post.clone(), "/tenants", Some(bad_setting))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem["field"], "settings.stt");
    let (status, problem) = server
        .admin(post.clone(), "/tenants", Some(json!({"plan": "x"})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem["field"], "name");
    let (status, problem) = server
        .admin(post.clone(), "/tenants", Some(json!({"name": "Bad Name"})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem["field"], "name");

    let patch = json!({"status": "suspended", "settings": {"greeting": null, "voice": "en-gb"}});
    let (status, patched) = server
        .admin(reqwest::Method::PATCH, "/tenants/bakery", Some(patch))
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["status"], "suspended");
    assert_eq!(patched["settings"].get("greeting"), None);
    assert_eq!(patched["settings"]["voice"], "en-gb");
    assert_eq!(patched["settings"]["language"], "en-US");

    let (status, listed) = server.admin(reqwest::Method::GET, "/tenants", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(!listed.to_string().contains("sk-test-secret-value"));
    let (status, _) = server
        .admin(reqwest::Method::GET, "/tenants/nobody", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
both_backends!(admin_tenants, admin_manages_tenants);

async fn admin_manages_numbers_and_keys(backend: Backend) {
    let server = Server::start(backend, 100, ADMIN).await;
    let (alpha_key, _) = server.two_tenants().await;
    let post = reqwest::Method::POST;

    let taken = json!({"number": "(202) 555-0100", "country": "1"});
    let (status, problem) = server
        .admin(post.clone(), "/tenants/beta/numbers", Some(taken))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    let (status, problem) = server
        .admin(
            post.clone(),
            "/tenants/beta/numbers",
            Some(json!({"number": "front desk"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem["field"], "number");

    let (status, numbers) = server
        .admin(reqwest::Method::GET, "/tenants/alpha/numbers", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(numbers[0]["number"], "+12025550100");
    let (status, _) = server
        .admin(
            reqwest::Method::DELETE,
            "/tenants/beta/numbers/+12025550100",
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "beta cannot remove alpha's number"
    );
    let (status, _) = server
        .admin(
            reqwest::Method::DELETE,
            "/tenants/alpha/numbers/%2B12025550100",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let (status, keys) = server
        .admin(reqwest::Method::GET, "/tenants/alpha/keys", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(keys.as_array().unwrap().len(), 1);
    assert!(alpha_key.starts_with(keys[0]["prefix"].as_str().unwrap()));
    assert!(
        !keys.to_string().contains(&alpha_key),
        "the secret is shown only once"
    );

    let prefix = keys[0]["prefix"].as_str().unwrap().to_string();
    let (status, _) = server
        .admin(
            reqwest::Method::DELETE,
            &format!("/tenants/beta/keys/{prefix}"),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "beta cannot revoke alpha's key"
    );
    let (status, revoked) = server
        .admin(
            reqwest::Method::DELETE,
            &format!("/tenants/alpha/keys/{prefix}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(revoked["revoked_at"].is_string());
    let (status, _) = server.tenant_get(&alpha_key, "/calls").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked key");
}
both_backends!(admin_numbers_keys, admin_manages_numbers_and_keys);

async fn tenant_reads_only_its_own_data(backend: Backend) {
    let server = Server::start(backend, 100, ADMIN).await;
    let (alpha_key, beta_key) = server.two_tenants().await;
    let alpha = server.store.tenant_by_name("alpha").await.unwrap().unwrap();
    let beta = server.store.tenant_by_name("beta").await.unwrap().unwrap();
    server
        .store
        .record_call(sample_record(alpha.id, "alpha-call"))
        .await;
    server
        .store
        .record_call(sample_record(beta.id, "beta-call"))
        .await;

    let (status, page) = server.tenant_get(&alpha_key, "/calls").await;
    assert_eq!(status, StatusCode::OK);
    let calls = page["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["call_id"], "alpha-call");
    let alpha_call = calls[0]["id"].as_i64().unwrap();

    let (_, beta_page) = server.tenant_get(&beta_key, "/calls").await;
    let beta_call = beta_page["calls"][0]["id"].as_i64().unwrap();

    let (status, detail) = server
        .tenant_get(&alpha_key, &format!("/calls/{alpha_call}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["turns"][0]["text"], "when are you open");
    assert_eq!(detail["turns"][1]["interrupted"], true);
    assert_eq!(detail["turns"][1]["latency_ms"]["llm_first_token"], 420);

    // Another tenant's call and a call that never existed look the same.
    let (status, foreign) = server
        .tenant_get(&alpha_key, &format!("/calls/{beta_call}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, missing) = server.tenant_get(&alpha_key, "/calls/999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        foreign["detail"]
            .as_str()
            .unwrap()
            .replace(&beta_call.to_string(), "N"),
        missing["detail"].as_str().unwrap().replace("999999", "N")
    );
    let (status, _) = server
        .tenant_get(&alpha_key, "/calls?call_id=beta-call")
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, filtered) = server
        .tenant_get(&alpha_key, "/calls?call_id=beta-call")
        .await;
    assert!(filtered["calls"].as_array().unwrap().is_empty());

    let (status, numbers) = server.tenant_get(&alpha_key, "/numbers").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(numbers.as_array().unwrap().len(), 1);
    assert_eq!(numbers[0]["number"], "+12025550100");

    let (status, own) = server.tenant_get(&alpha_key, "/tenant").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(own["name"], "alpha");

    let (status, usage) = server.tenant_get(&alpha_key, "/usage").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(usage["totals"]["minutes"], 2);
    assert_eq!(usage["totals"]["cost_micros"], 1250);
    let (status, problem) = server
        .tenant_get(&alpha_key, "/usage?from=2026-02-10&to=2026-02-01")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem["field"], "to");
    let (status, problem) = server.tenant_get(&alpha_key, "/calls?limit=ten").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");

    // The tenant key opens no admin route, and the admin token is not a tenant key.
    let (status, _) = server.tenant_get(&alpha_key, "/tenants").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = server.tenant_get(ADMIN, "/calls").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Requests are counted in the tenant's usage.
    server.store.flush_api_usage().await;
    let today = chrono::Utc::now().date_naive();
    let days = server.store.usage(alpha.id, today, today).await.unwrap();
    assert!(days[0].api_requests >= 10, "{days:?}");
}
both_backends!(tenant_isolation, tenant_reads_only_its_own_data);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_bad_credentials() {
    let server = Server::start(Backend::Sqlite, 100, ADMIN).await;
    let (alpha_key, _) = server.two_tenants().await;
    let response = server
        .client
        .get(server.url("/calls"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );

    // Change the last character of the real key; a random key may already end in `x`.
    let last = if alpha_key.ends_with('x') { 'y' } else { 'x' };
    let forged = format!("{}{last}", &alpha_key[..alpha_key.len() - 1]);
    for key in [
        "nonsense",
        forged.as_str(),
        "vg_000000000000_00000000000000000000000000000000",
    ] {
        let (status, _) = server.tenant_get(key, "/calls").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{key}");
    }
    let (status, _) = server.tenant_get("wrong-admin", "/tenants").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    server
        .store
        .set_tenant_status("alpha", voicegate::tenancy::TenantStatus::Suspended)
        .await
        .unwrap();
    let (status, problem) = server.tenant_get(&alpha_key, "/calls").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(problem["detail"].as_str().unwrap().contains("suspended"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_disabled_without_token() {
    let server = Server::start(Backend::Sqlite, 100, "").await;
    let response = server
        .client
        .get(server.url("/tenants"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let (status, problem) = server.tenant_get("", "/tenants").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(problem["detail"].as_str().unwrap().contains("disabled"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_rate_limit_answers_429() {
    let server = Server::start(Backend::Sqlite, 3, ADMIN).await;
    let (alpha_key, beta_key) = server.two_tenants().await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..6 {
        let response = server
            .client
            .get(server.url("/numbers"))
            .bearer_auth(&alpha_key)
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = response.headers().get("retry-after").cloned();
        }
        statuses.push(response.status());
    }
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(limited >= 2, "{statuses:?}");
    assert_eq!(retry_after.unwrap(), "1");
    let (status, _) = server.tenant_get(&beta_key, "/numbers").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "other tenants keep their own budget"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_events_reach_only_their_tenant() {
    let server = Server::start(Backend::Sqlite, 100, ADMIN).await;
    let (alpha_key, _) = server.two_tenants().await;
    let alpha = server.store.tenant_by_name("alpha").await.unwrap().unwrap();
    let beta = server.store.tenant_by_name("beta").await.unwrap().unwrap();

    let response = server
        .client
        .get(server.url("/events"))
        .bearer_auth(&alpha_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut stream = response.bytes_stream();

    // The subscription exists once the response headers arrived.
    assert_eq!(server.bus.subscriber_count(alpha.id), 1);
    server.bus.publish(
        beta.id,
        LiveEvent::now(
            "beta-secret-call",
            LiveEventKind::CallState {
                state: "answered".into(),
            },
        ),
    );
    server.bus.publish(
        alpha.id,
        LiveEvent::now(
            "alpha-call",
            LiveEventKind::Transcript {
                role: TurnRole::Caller,
                text: "do you deliver".into(),
                is_final: false,
            },
        ),
    );
    server.bus.publish(
        alpha.id,
        LiveEvent::now(
            "alpha-call",
            LiveEventKind::BargeIn {
                heard_text: "We deliver on".into(),
            },
        ),
    );

    let mut received = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !received.contains("event: barge_in") {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("events arrive")
            .expect("stream open")
            .unwrap();
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(received.contains("event: transcript"), "{received}");
    assert!(
        received.contains("\"text\":\"do you deliver\""),
        "{received}"
    );
    assert!(received.contains("\"is_final\":false"), "{received}");
    assert!(!received.contains("beta-secret-call"), "{received}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_described_route_is_served() {
    let server = Server::start(Backend::Sqlite, 100, ADMIN).await;
    let (status, spec) = into_parts(
        server
            .client
            .get(server.url("/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(spec, serde_json::from_str::<Value>(OPENAPI_JSON).unwrap());
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item
            .as_object()
            .unwrap()
            .keys()
            .filter(|m| *m != "parameters")
        {
            let concrete = path
                .replace("{tenant}", "alpha")
                .replace("{number}", "+12025550100")
                .replace("{key}", "1")
                .replace("{id}", "1");
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = server
                .client
                .request(method.clone(), server.url(&concrete))
                .send()
                .await
                .unwrap();
            let expected = if path == "/openapi.json" {
                StatusCode::OK
            } else {
                StatusCode::UNAUTHORIZED
            };
            assert_eq!(response.status(), expected, "{method} {path}");
        }
    }
    let (status, problem) = server.tenant_get("x", "/no-such-route").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(problem["status"], 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_database_answers_503() {
    let db = TestDb::new(Backend::Postgres).await;
    let direct = db.plain_store().await;
    direct
        .create_tenant(voicegate::tenancy::NewTenant {
            name: "alpha".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let key = direct.create_key("alpha", "dashboard").await.unwrap().key;

    let proxy = Proxy::start(&pg_target(&db.config)).await;
    let config = through_proxy(&db.config, proxy.port);
    let store = Store::connect(&config, &super::common::no_default_tenant(), "node-proxy")
        .await
        .unwrap();
    let http = HttpConfig {
        admin_token: ADMIN.into(),
        ..HttpConfig::default()
    };
    let app = axum::Router::new().nest("/v1", router(ApiState::new(store, EventBus::new(), &http)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = Client::new();

    let response = client
        .get(format!("{base}/numbers"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    proxy.cut();
    for (path, token) in [("/numbers", key.as_str()), ("/tenants", ADMIN)] {
        let response = client
            .get(format!("{base}{path}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(response.headers()["retry-after"], "5", "{path}");
        let (_, problem) = into_parts(response).await;
        assert_eq!(problem["status"], 503, "{path}");
    }
}
