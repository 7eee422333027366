//! The tenancy database: connection pools for SQLite or PostgreSQL, migrations, health, and
//! the operations on tenants, numbers, keys, records and usage (one file per concept).
//!
//! Every operation runs through [`db_op!`], which picks the backend, applies the tenant scope
//! (on PostgreSQL, the transaction-local `app.tenant_id` or `app.admin` settings that the
//! row-level security policies read), enforces `database.timeout_ms` and logs slow operations.

mod background;
mod keys;
mod numbers;
mod records;
mod tenants;

use std::collections::HashMap;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, PgPool, SqlitePool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::admission::Ledger;
use super::error::TenancyError;
use super::metrics;
use super::model::TenantId;
use super::spool::Spool;
use super::throttle::LogThrottle;
use super::{DatabaseConfig, TenancyConfig};

pub use keys::AuthenticatedKey;

/// Rows a database operation may see on PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Only the rows of one tenant.
    Tenant(TenantId),
    /// Every row: routing, key lookup, the admin API and lease heartbeats.
    Admin,
}

/// Builds the statement that opens a PostgreSQL transaction and sets its scope in the same
/// round trip.
pub(crate) fn scope_begin(scope: Scope) -> sqlx::AssertSqlSafe<String> {
    // Only an integer or a constant is formatted into the statement, so it cannot be injected.
    let sql = match scope {
        Scope::Tenant(id) => {
            format!(
                "BEGIN; SELECT set_config('app.tenant_id', '{}', true)",
                id.0
            )
        }
        Scope::Admin => "BEGIN; SELECT set_config('app.admin', 'on', true)".to_string(),
    };
    sqlx::AssertSqlSafe(sql)
}

/// Runs `$body` with `$conn` bound to a connection of the store's backend. `$body` is
/// compiled once per backend, so the same query text and row types serve both.
///
/// Modes:
/// - `conn` runs the body on a pooled connection. On PostgreSQL it still runs inside a scoped
///   transaction, because the scope setting is transaction-local.
/// - `tx` runs it in a transaction on both backends. SQLite uses `BEGIN IMMEDIATE`, so a
///   writer never has to upgrade a read lock.
/// - `pg` is for PostgreSQL-only statements and fails on SQLite.
macro_rules! db_op {
    ($inner:expr, $op:literal, $scope:expr, $mode:ident, |$conn:ident| $body:expr) => {{
        let inner: &$crate::tenancy::store::StoreInner = &$inner;
        inner
            .timed($op, async {
                match &inner.db {
                    $crate::tenancy::store::Db::Sqlite(pool) => {
                        db_op!(@sqlite $mode, pool, $conn, $body)
                    }
                    $crate::tenancy::store::Db::Postgres(pool) => {
                        let mut tx = pool
                            .begin_with($crate::tenancy::store::scope_begin($scope))
                            .await?;
                        let value = {
                            let $conn: &mut sqlx::PgConnection = &mut tx;
                            $body
                        };
                        tx.commit().await?;
                        Ok(value)
                    }
                }
            })
            .await
    }};
    (@sqlite conn, $pool:ident, $conn:ident, $body:expr) => {{
        let mut pooled = $pool.acquire().await?;
        let $conn: &mut sqlx::SqliteConnection = &mut pooled;
        Ok($body)
    }};
    (@sqlite pg, $pool:ident, $conn:ident, $body:expr) => {{
        let _ = $pool;
        Err($crate::tenancy::TenancyError::invalid(
            "database.url",
            "this operation needs PostgreSQL",
        ))
    }};
    (@sqlite tx, $pool:ident, $conn:ident, $body:expr) => {{
        let mut tx = $pool.begin_with("BEGIN IMMEDIATE").await?;
        let value = {
            let $conn: &mut sqlx::SqliteConnection = &mut tx;
            $body
        };
        tx.commit().await?;
        Ok(value)
    }};
}
pub(crate) use db_op;

/// The connection pool of one backend.
#[derive(Debug, Clone)]
pub(crate) enum Db {
    /// Embedded single-node database.
    Sqlite(SqlitePool),
    /// Shared database of a cluster.
    Postgres(PgPool),
}

/// Identity of a node that takes calls.
#[derive(Debug)]
pub(crate) struct NodeState {
    /// `server.node_id`, written into CDRs and leases.
    pub id: String,
    /// Random id of this process run, written into leases; leases of the same node id with
    /// another run id are leftovers of an earlier run.
    pub run_id: String,
}

/// Shared state behind [`Store`] and every [`super::CallSlot`].
#[derive(Debug)]
pub(crate) struct StoreInner {
    pub db: Db,
    pub tenancy: TenancyConfig,
    pub node: Option<NodeState>,
    pub ledger: Ledger,
    pub spool: Option<Spool>,
    pub spool_wake: Arc<Notify>,
    /// Serialises spool replays, so a file is never written and removed twice at once.
    pub replay_lock: tokio::sync::Mutex<()>,
    pub api_requests: Mutex<HashMap<TenantId, i64>>,
    pub cancel: CancellationToken,
    pub tasks: TaskTracker,
    /// Limits repeated warnings (slow operations, spooled records) to one a second each.
    pub log_throttle: LogThrottle,
    timeout: Duration,
    slow: Duration,
}

impl Drop for StoreInner {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl StoreInner {
    /// Runs one database operation under the timeout, recording its duration and logging it
    /// when slow.
    pub(crate) async fn timed<T>(
        &self,
        op: &'static str,
        operation: impl Future<Output = Result<T, TenancyError>>,
    ) -> Result<T, TenancyError> {
        let started = Instant::now();
        let result = tokio::time::timeout(self.timeout, operation)
            .await
            .unwrap_or(Err(TenancyError::Timeout(op)));
        let elapsed = started.elapsed();
        metrics::DB_SECONDS
            .with_label_values(&[op])
            .observe(elapsed.as_secs_f64());
        if elapsed >= self.slow {
            metrics::DB_SLOW.with_label_values(&[op]).inc();
            if let Some(suppressed) = self.log_throttle.check(op, Instant::now()) {
                let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
                tracing::warn!(op, elapsed_ms, suppressed, "slow database operation");
            }
        }
        result
    }

    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self.db, Db::Postgres(_))
    }

    pub(crate) fn node_id(&self) -> &str {
        self.node.as_ref().map_or("", |node| node.id.as_str())
    }

    pub(crate) fn run_id(&self) -> &str {
        self.node.as_ref().map_or("", |node| node.run_id.as_str())
    }
}

/// The tenancy database of one voicegate process. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) inner: Arc<StoreInner>,
}

impl Store {
    /// Connects as call-taking node `node_id`: opens the pool, the record spool, and starts
    /// the background tasks (spool replay, lease heartbeats on PostgreSQL, API usage flush).
    /// `node_id` must be unique among running nodes, because a node removes leftover call slots
    /// of its own id when it starts. Does not migrate; call [`Store::migrate`].
    pub async fn connect(
        db: &DatabaseConfig,
        tenancy: &TenancyConfig,
        node_id: &str,
    ) -> Result<Store, TenancyError> {
        if node_id.is_empty() {
            return Err(TenancyError::invalid("server.node_id", "must not be empty"));
        }
        let spool = Spool::open(&db.spool_dir)?;
        let node = NodeState {
            id: node_id.to_string(),
            run_id: hex::encode(rand::random::<[u8; 8]>()),
        };
        let store = Self::open(db, tenancy, Some(node), Some(spool)).await?;
        background::start(&store.inner);
        tracing::info!(
            node = node_id,
            backend = store.backend_name(),
            "tenancy store connected"
        );
        Ok(store)
    }

    /// Connects for administration only (CLI, migrations): no node identity, no spool and no
    /// background tasks. Such a store cannot admit calls or record them.
    pub async fn connect_admin(
        db: &DatabaseConfig,
        tenancy: &TenancyConfig,
    ) -> Result<Store, TenancyError> {
        Self::open(db, tenancy, None, None).await
    }

    async fn open(
        db: &DatabaseConfig,
        tenancy: &TenancyConfig,
        node: Option<NodeState>,
        spool: Option<Spool>,
    ) -> Result<Store, TenancyError> {
        let timeout = Duration::from_millis(db.timeout_ms.max(1));
        let slow = Duration::from_millis(db.slow_query_ms);
        let pool = if db.url.starts_with("sqlite:") {
            Db::Sqlite(connect_sqlite(db, timeout, slow).await?)
        } else {
            Db::Postgres(connect_postgres(db, timeout, slow).await?)
        };
        let inner = StoreInner {
            db: pool,
            tenancy: tenancy.clone(),
            node,
            ledger: Ledger::default(),
            spool,
            spool_wake: Arc::new(Notify::new()),
            replay_lock: tokio::sync::Mutex::new(()),
            api_requests: Mutex::new(HashMap::new()),
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
            log_throttle: LogThrottle::new(Duration::from_secs(1)),
            timeout,
            slow,
        };
        Ok(Store {
            inner: Arc::new(inner),
        })
    }

    /// `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match self.inner.db {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Applies pending migrations, then creates the `[tenancy] default_tenant` when it is set
    /// and missing, so that a fresh install takes calls to every number.
    pub async fn migrate(&self) -> Result<(), TenancyError> {
        match &self.inner.db {
            Db::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await?,
            Db::Postgres(pool) => {
                warn_if_rls_bypassed(pool).await;
                // A migration may run longer than database.timeout_ms, so it gets a connection
                // of its own without the statement timeout, closed afterwards.
                let mut conn = pool.acquire().await?.detach();
                sqlx::query("SET statement_timeout = 0")
                    .execute(&mut conn)
                    .await?;
                sqlx::migrate!("./migrations/postgres")
                    .run(&mut conn)
                    .await?;
                conn.close().await?;
            }
        }
        self.ensure_default_tenant().await
    }

    /// Checks that the database responds, for `/healthz`.
    pub async fn health(&self) -> Result<(), TenancyError> {
        db_op!(self.inner, "health", Scope::Admin, conn, |conn| {
            sqlx::query("SELECT 1").execute(&mut *conn).await?;
        })
    }

    /// Stops the background tasks, writes pending API usage, waits for call slots being
    /// released, tries once more to replay the spool, and closes the pool.
    pub async fn close(&self) {
        self.inner.cancel.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        background::flush_api_usage(&self.inner).await;
        background::replay_spool(&self.inner).await;
        match &self.inner.db {
            Db::Sqlite(pool) => pool.close().await,
            Db::Postgres(pool) => pool.close().await,
        }
        tracing::info!("tenancy store closed");
    }

    /// Waits until every call slot release started by a dropped [`super::CallSlot`] has
    /// reached the database.
    pub async fn settle(&self) {
        self.inner.ledger.settle().await;
    }
}

async fn connect_sqlite(
    db: &DatabaseConfig,
    timeout: Duration,
    slow: Duration,
) -> Result<SqlitePool, TenancyError> {
    let options = SqliteConnectOptions::from_str(&db.url)?
        .create_if_missing(true)
        .foreign_keys(true)
        // WAL lets the API read while calls write; NORMAL syncs at checkpoints, which keeps
        // every commit across a process crash (an OS crash may lose the latest ones).
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(timeout)
        .log_statements(log::LevelFilter::Trace)
        .log_slow_statements(log::LevelFilter::Warn, slow);
    let pool = SqlitePoolOptions::new()
        .max_connections(db.max_connections)
        .acquire_timeout(timeout)
        .connect_with(options)
        .await?;
    Ok(pool)
}

async fn connect_postgres(
    db: &DatabaseConfig,
    timeout: Duration,
    slow: Duration,
) -> Result<PgPool, TenancyError> {
    // The server abandons a statement that outlives the client's timeout instead of running on.
    let statement_timeout = timeout.as_millis().to_string();
    let options = PgConnectOptions::from_str(&db.url)?
        .application_name("voicegate")
        .options([("statement_timeout", statement_timeout.as_str())])
        .log_statements(log::LevelFilter::Trace)
        .log_slow_statements(log::LevelFilter::Warn, slow);
    // connect_lazy: a node starts (and spools records) even while the database is down.
    let pool = PgPoolOptions::new()
        .max_connections(db.max_connections)
        .acquire_timeout(timeout)
        .connect_lazy_with(options);
    Ok(pool)
}

/// Warns when the role is a superuser or has BYPASSRLS, because row-level security never
/// applies to such roles.
async fn warn_if_rls_bypassed(pool: &PgPool) {
    let row: Result<(bool, bool), _> =
        sqlx::query_as("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
            .fetch_one(pool)
            .await;
    if let Ok((superuser, bypass)) = row
        && (superuser || bypass)
    {
        tracing::warn!(
            "the database role is a superuser or has BYPASSRLS, so row-level security does not \
             isolate tenants; connect as an ordinary role that owns the voicegate tables"
        );
    }
}
