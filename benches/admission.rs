//! Admission under a burst: 500 INVITEs for one tenant with a concurrency limit of 100, on
//! SQLite and on PostgreSQL. Prints how many were admitted (must equal the limit), admission
//! latency percentiles and database statements per admission and per release.
//!
//! Run with `cargo bench --bench admission`. PostgreSQL comes from `VOICEGATE_TEST_POSTGRES`
//! (default `postgres://postgres@127.0.0.1:5432/test`, a superuser that may create a
//! temporary role and database, both dropped at the end).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use voicegate::tenancy::{
    CallSlot, DatabaseConfig, NewTenant, Store, TenancyConfig, Tenant, TenantLimits,
};

const ATTEMPTS: usize = 500;
const LIMIT: u32 = 100;

/// Counts the statements sqlx reports (one event per executed statement).
#[derive(Clone, Default)]
struct StatementCounter(Arc<AtomicU64>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for StatementCounter {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

struct Figures {
    admitted: usize,
    latencies: Vec<Duration>,
    statements_per_admission: f64,
    statements_per_release: f64,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Admits one call after another, to show the cost of one admission without queueing.
async fn sequential(store: &Store, tenant: &Tenant, run: &str) -> (Vec<CallSlot>, Vec<Duration>) {
    let mut slots = Vec::new();
    let mut latencies = Vec::new();
    for i in 0..ATTEMPTS {
        let began = Instant::now();
        let result = store.admit(tenant, &format!("{run}-{i}")).await;
        latencies.push(began.elapsed());
        slots.extend(result.ok());
    }
    (slots, latencies)
}

async fn burst(
    store: &Store,
    tenant: &Tenant,
    spread: Duration,
    run: &str,
) -> (Vec<CallSlot>, Vec<Duration>) {
    let start = tokio::time::Instant::now();
    let step = spread / ATTEMPTS as u32;
    let tasks: Vec<_> = (0..ATTEMPTS)
        .map(|i| {
            let store = store.clone();
            let tenant = tenant.clone();
            let call_id = format!("{run}-{i}");
            tokio::spawn(async move {
                tokio::time::sleep_until(start + step * i as u32).await;
                let began = Instant::now();
                let result = store.admit(&tenant, &call_id).await;
                (result.ok(), began.elapsed())
            })
        })
        .collect();
    let mut slots = Vec::new();
    let mut latencies = Vec::new();
    for task in tasks {
        let (slot, latency) = task.await.expect("admission task");
        slots.extend(slot);
        latencies.push(latency);
    }
    (slots, latencies)
}

async fn measure(
    store: &Store,
    counter: &StatementCounter,
    spread: Option<Duration>,
    run: &str,
) -> Figures {
    let tenant = store
        .create_tenant(NewTenant {
            name: run.into(),
            limits: TenantLimits {
                max_concurrent_calls: LIMIT,
                ..TenantLimits::default()
            },
            ..NewTenant::default()
        })
        .await
        .expect("tenant created");

    let before = counter.0.load(Ordering::Relaxed);
    let (slots, mut latencies) = match spread {
        Some(spread) => burst(store, &tenant, spread, run).await,
        None => sequential(store, &tenant, run).await,
    };
    let admission_statements = counter.0.load(Ordering::Relaxed) - before;
    let admitted = slots.len();

    let before = counter.0.load(Ordering::Relaxed);
    for slot in slots {
        slot.release().await;
    }
    let release_statements = counter.0.load(Ordering::Relaxed) - before;

    latencies.sort();
    Figures {
        admitted,
        latencies,
        statements_per_admission: admission_statements as f64 / ATTEMPTS as f64,
        statements_per_release: release_statements as f64 / admitted.max(1) as f64,
    }
}

fn print(backend: &str, shape: &str, figures: &Figures) {
    let ms = |d: Duration| d.as_secs_f64() * 1_000.0;
    println!(
        "{backend:<10} {shape:<16} admitted {:>3}/{ATTEMPTS} (limit {LIMIT})  p50 {:>7.3} ms  \
         p95 {:>7.3} ms  p99 {:>7.3} ms  max {:>7.3} ms  statements/admission {:.2}  \
         statements/release {:.2}",
        figures.admitted,
        ms(percentile(&figures.latencies, 0.50)),
        ms(percentile(&figures.latencies, 0.95)),
        ms(percentile(&figures.latencies, 0.99)),
        ms(*figures.latencies.last().unwrap_or(&Duration::ZERO)),
        figures.statements_per_admission,
        figures.statements_per_release,
    );
    assert_eq!(
        figures.admitted, LIMIT as usize,
        "admitted count must equal the limit"
    );
}

async fn run_backend(backend: &str, config: DatabaseConfig, counter: &StatementCounter) {
    let tenancy = TenancyConfig {
        default_tenant: String::new(),
        ..TenancyConfig::default()
    };
    let store = Store::connect(&config, &tenancy, "bench-node")
        .await
        .expect("store connects");
    store.migrate().await.expect("migrations apply");
    let one_by_one = measure(&store, counter, None, "sequential").await;
    print(backend, "one by one", &one_by_one);
    let spread = measure(&store, counter, Some(Duration::from_secs(1)), "spread").await;
    print(backend, "over 1 s", &spread);
    let at_once = measure(&store, counter, Some(Duration::ZERO), "at-once").await;
    print(backend, "all at once", &at_once);
    store.close().await;
}

async fn postgres_database(admin_url: &str, name: &str) -> String {
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("PostgreSQL reachable at VOICEGATE_TEST_POSTGRES");
    for sql in [
        format!("CREATE ROLE {name} LOGIN NOSUPERUSER NOBYPASSRLS"),
        format!("CREATE DATABASE {name} OWNER {name}"),
    ] {
        conn.execute(sqlx::AssertSqlSafe(sql))
            .await
            .expect("bench database created");
    }
    let mut url = url::Url::parse(admin_url).expect("VOICEGATE_TEST_POSTGRES is a URL");
    url.set_username(name).expect("user name");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

async fn drop_postgres_database(admin_url: &str, name: &str) {
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("PostgreSQL reachable");
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("DROP ROLE IF EXISTS {name}"),
    ] {
        conn.execute(sqlx::AssertSqlSafe(sql))
            .await
            .expect("bench database dropped");
    }
}

fn main() {
    let counter = StatementCounter::default();
    tracing_subscriber::registry()
        .with(counter.clone())
        .with(
            tracing_subscriber::filter::Targets::new()
                .with_target("sqlx::query", tracing::Level::TRACE),
        )
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("temporary directory");
        let spool_dir = dir.path().join("spool").display().to_string();
        let sqlite = DatabaseConfig {
            url: format!("sqlite:{}", dir.path().join("bench.db").display()),
            spool_dir: spool_dir.clone(),
            ..DatabaseConfig::default()
        };
        run_backend("sqlite", sqlite, &counter).await;

        let admin_url = std::env::var("VOICEGATE_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let name = format!("vg_bench_{}", std::process::id());
        let url = postgres_database(&admin_url, &name).await;
        let postgres = DatabaseConfig {
            url,
            spool_dir,
            ..DatabaseConfig::default()
        };
        run_backend("postgres", postgres, &counter).await;
        drop_postgres_database(&admin_url, &name).await;
    });
    println!(
        "statements are those sqlx executed; each pool checkout of an idle connection adds one \
         liveness ping (sqlx test_before_acquire)"
    );
}
