//! Databases for the tenancy tests: a fresh SQLite file, or a fresh PostgreSQL database owned
//! by a fresh ordinary role (so row-level security applies), both removed afterwards.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};
use voicegate::tenancy::{
    CallRecord, DatabaseConfig, NewTenant, Store, TenancyConfig, Tenant, TenantLimits, TurnRecord,
    TurnRole,
};

/// Returns the superuser URL of the PostgreSQL the tests use.
pub fn admin_url() -> String {
    std::env::var("VOICEGATE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database that exists for one test.
pub struct TestDb {
    pub config: DatabaseConfig,
    pub dir: tempfile::TempDir,
    pg: Option<PgDatabase>,
}

struct PgDatabase {
    name: String,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().expect("temporary directory");
        let spool_dir = dir.path().join("spool").display().to_string();
        let (url, pg) = match backend {
            Backend::Sqlite => {
                let file = dir.path().join("voicegate.db");
                (format!("sqlite:{}", file.display()), None)
            }
            Backend::Postgres => {
                let name = format!("vg_test_{}", hex::encode(rand::random::<[u8; 6]>()));
                create_pg_database(&name).await;
                (app_url(&name), Some(PgDatabase { name }))
            }
        };
        let config = DatabaseConfig {
            url,
            max_connections: 8,
            spool_dir,
            slow_query_ms: 1_000,
            timeout_ms: 5_000,
        };
        TestDb { config, dir, pg }
    }

    /// Connects a call-taking store for `node` and migrates the database. Each node gets its
    /// own spool directory, `spool-<node>`, as separate processes would.
    pub async fn store(&self, tenancy: &TenancyConfig, node: &str) -> Store {
        self.store_in(tenancy, node, &format!("spool-{node}")).await
    }

    /// Connects a call-taking store for `node` with its spool in `spool` under the test's
    /// directory, and migrates the database.
    pub async fn store_in(&self, tenancy: &TenancyConfig, node: &str, spool: &str) -> Store {
        let config = DatabaseConfig {
            spool_dir: self.dir.path().join(spool).display().to_string(),
            ..self.config.clone()
        };
        let store = Store::connect(&config, tenancy, node)
            .await
            .expect("store connects");
        store.migrate().await.expect("migrations apply");
        store
    }

    /// Connects a store with the default `[tenancy]` settings but no default tenant.
    pub async fn plain_store(&self) -> Store {
        self.store(&no_default_tenant(), "node-a").await
    }

    /// Name of the PostgreSQL database (for tests that inspect it as a superuser).
    pub fn pg_name(&self) -> Option<&str> {
        self.pg.as_ref().map(|pg| pg.name.as_str())
    }

    /// Runs a query returning one integer as the superuser on this test's PostgreSQL database,
    /// which row-level security does not restrict.
    pub async fn pg_superuser_i64(&self, sql: &str) -> i64 {
        let name = self.pg_name().expect("a PostgreSQL test database");
        let options = PgConnectOptions::from_str(&admin_url())
            .expect("VOICEGATE_TEST_POSTGRES is a URL")
            .database(name);
        let mut conn = options.connect().await.expect("superuser connects");
        let value: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_one(&mut conn)
            .await
            .expect("superuser query runs");
        conn.close().await.ok();
        value
    }

    /// Runs SQL as the superuser on this test's PostgreSQL database.
    pub async fn pg_superuser_exec(&self, sql: &str) {
        let name = self.pg_name().expect("a PostgreSQL test database");
        let options = PgConnectOptions::from_str(&admin_url())
            .expect("VOICEGATE_TEST_POSTGRES is a URL")
            .database(name);
        let mut conn = options.connect().await.expect("superuser connects");
        conn.execute(sqlx::AssertSqlSafe(sql.to_string()))
            .await
            .expect("superuser statement runs");
        conn.close().await.ok();
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(pg) = self.pg.take() else { return };
        // Drop runs inside the test's runtime, so the cleanup gets its own thread and runtime.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            runtime.block_on(drop_pg_database(&pg.name));
        });
        let _ = cleanup.join();
    }
}

/// `[tenancy]` with no default tenant, so unknown numbers get 404.
pub fn no_default_tenant() -> TenancyConfig {
    TenancyConfig {
        default_tenant: String::new(),
        ..TenancyConfig::default()
    }
}

fn app_url(name: &str) -> String {
    let mut url = url::Url::parse(&admin_url()).expect("VOICEGATE_TEST_POSTGRES is a URL");
    url.set_username(name).expect("URL takes a user name");
    url.set_password(None).expect("URL takes no password");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

async fn superuser() -> sqlx::PgConnection {
    sqlx::PgConnection::connect(&admin_url())
        .await
        .expect("PostgreSQL at VOICEGATE_TEST_POSTGRES accepts the superuser")
}

/// Creates a login role and a database it owns, both named `name`. The role is an ordinary
/// one: no superuser, no BYPASSRLS.
async fn create_pg_database(name: &str) {
    let mut conn = superuser().await;
    let statements = [
        format!("CREATE ROLE {name} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"),
        format!("CREATE DATABASE {name} OWNER {name}"),
    ];
    for sql in statements {
        conn.execute(sqlx::AssertSqlSafe(sql))
            .await
            .expect("test database created");
    }
    conn.close().await.ok();
}

async fn drop_pg_database(name: &str) {
    let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url()).await else {
        return;
    };
    let statements = [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("DROP ROLE IF EXISTS {name}"),
    ];
    for sql in statements {
        if let Err(err) = conn.execute(sqlx::AssertSqlSafe(sql)).await {
            eprintln!("test database cleanup failed: {err}");
        }
    }
    conn.close().await.ok();
}

/// Creates a tenant with the given concurrency limit.
pub async fn tenant(store: &Store, name: &str, max_calls: u32) -> Tenant {
    store
        .create_tenant(NewTenant {
            name: name.into(),
            limits: TenantLimits {
                max_concurrent_calls: max_calls,
                ..TenantLimits::default()
            },
            ..NewTenant::default()
        })
        .await
        .expect("tenant created")
}

/// Defines a test that runs `$scenario(Backend)` once per backend.
macro_rules! both_backends {
    ($name:ident, $scenario:path) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $scenario($crate::common::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $scenario($crate::common::Backend::Postgres).await;
            }
        }
    };
}
pub(crate) use both_backends;

/// A finished call of `tenant` that was answered after 2 s and lasted 75 s, with two turns.
pub fn sample_record(tenant: voicegate::tenancy::TenantId, call_id: &str) -> CallRecord {
    let invite = chrono::Utc::now();
    let at = |ms: i64| invite + chrono::Duration::milliseconds(ms);
    let turn = |role, text: &str, start: i64, end: i64, interrupted| TurnRecord {
        role,
        text: text.into(),
        started_at: at(start),
        ended_at: at(end),
        latency_ms: BTreeMap::from([
            ("stt_final".to_string(), 180),
            ("llm_first_token".to_string(), 420),
        ]),
        interrupted,
    };
    CallRecord {
        call_id: call_id.into(),
        tenant_id: tenant,
        from: "+12025550142".into(),
        to: "+12025550100".into(),
        forwarded_from: "+12025550199".into(),
        trunk: "loopback".into(),
        codec: "pcmu".into(),
        invite_at: invite,
        answer_at: Some(at(2_000)),
        end_at: at(77_000),
        end_reason: "caller-bye".into(),
        sip_status: 200,
        cost_micros: 1_250,
        turns: vec![
            turn(TurnRole::Caller, "when are you open", 3_000, 4_500, false),
            turn(TurnRole::Agent, "We are open Monday to", 5_100, 6_000, true),
        ],
    }
}

/// A TCP proxy in front of PostgreSQL whose link the test can cut and restore, as a network
/// outage or database restart would.
pub struct Proxy {
    pub port: u16,
    open: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Proxy {
    pub async fn start(target: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let links = Arc::new(Mutex::new(Vec::new()));
        let target = target.to_string();
        let (accept_open, accept_links) = (open.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accept_open.load(Ordering::SeqCst) {
                    continue;
                }
                let target = target.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                accept_links.lock().push(link.abort_handle());
            }
        });
        Proxy { port, open, links }
    }

    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for link in self.links.lock().drain(..) {
            link.abort();
        }
    }

    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// Points `config` at the proxy on `port`, with a short timeout so outages show quickly.
pub fn through_proxy(config: &DatabaseConfig, port: u16) -> DatabaseConfig {
    let mut url = url::Url::parse(&config.url).unwrap();
    url.set_port(Some(port)).unwrap();
    DatabaseConfig {
        url: url.to_string(),
        timeout_ms: 1_000,
        ..config.clone()
    }
}

/// Returns `host:port` of the PostgreSQL server in `config`.
pub fn pg_target(config: &DatabaseConfig) -> String {
    let url = url::Url::parse(&config.url).unwrap();
    format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432))
}
