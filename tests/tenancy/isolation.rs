//! Isolation between tenants: every query filters by tenant, and on PostgreSQL row-level
//! security hides other tenants' rows even from a query that forgets its filter.

use sqlx::{Connection, Executor, Row};
use voicegate::tenancy::{CallQuery, TenantId};

use super::common::{Backend, TestDb, both_backends, sample_record, tenant};

const TENANT_TABLES: [&str; 7] = [
    "tenants",
    "phone_numbers",
    "api_keys",
    "calls",
    "turns",
    "usage_daily",
    "call_leases",
];

async fn api_reads_never_cross_tenants(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.plain_store().await;
    let alpha = tenant(&store, "alpha", 0).await;
    let beta = tenant(&store, "beta", 0).await;
    store
        .record_call(sample_record(alpha.id, "alpha-call"))
        .await;
    store.record_call(sample_record(beta.id, "beta-call")).await;

    let alpha_calls = store
        .list_calls(alpha.id, &CallQuery::default())
        .await
        .unwrap();
    assert_eq!(alpha_calls.len(), 1);
    assert_eq!(alpha_calls[0].call_id, "alpha-call");
    let beta_calls = store
        .list_calls(beta.id, &CallQuery::default())
        .await
        .unwrap();
    let beta_call_id = beta_calls[0].id;

    assert!(
        store
            .call_detail(alpha.id, beta_call_id)
            .await
            .unwrap()
            .is_none()
    );
    let by_call_id = CallQuery {
        call_id: Some("beta-call".into()),
        ..CallQuery::default()
    };
    assert!(
        store
            .list_calls(alpha.id, &by_call_id)
            .await
            .unwrap()
            .is_empty()
    );
    let today = chrono::Utc::now().date_naive();
    let usage = store.usage(alpha.id, today, today).await.unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0].cost_micros, 1_250, "only alpha's record counts");
}
both_backends!(api_reads, api_reads_never_cross_tenants);

/// Opens a connection as the application role, which row-level security applies to.
async fn app_connection(db: &TestDb) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(&db.config.url).await.unwrap()
}

async fn count_rows(conn: &mut sqlx::PgConnection, table: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM {table}");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_one(&mut *conn)
        .await
        .unwrap()
        .get(0)
}

async fn fill_two_tenants(db: &TestDb) -> (TenantId, TenantId) {
    let store = db.plain_store().await;
    let alpha = tenant(&store, "alpha", 5).await;
    let beta = tenant(&store, "beta", 5).await;
    for (name, id, number) in [
        ("alpha", alpha.id, "+12025550100"),
        ("beta", beta.id, "+12025550111"),
    ] {
        store.add_number(name, number, "").await.unwrap();
        store.create_key(name, "test").await.unwrap();
        store
            .record_call(sample_record(id, &format!("{name}-call")))
            .await;
    }
    // Leases that stay behind after the store is gone.
    std::mem::forget(store.admit(&alpha, "alpha-live").await.unwrap());
    std::mem::forget(store.admit(&beta, "beta-live").await.unwrap());
    (alpha.id, beta.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfiltered_query_sees_only_own_tenant() {
    let db = TestDb::new(Backend::Postgres).await;
    let (alpha, beta) = fill_two_tenants(&db).await;
    let mut conn = app_connection(&db).await;

    for (tenant, other) in [(alpha, beta), (beta, alpha)] {
        conn.execute("BEGIN").await.unwrap();
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(tenant.0.to_string())
            .execute(&mut conn)
            .await
            .unwrap();
        for table in TENANT_TABLES {
            // Each tenant has one row per table, except two turns in its one call.
            let expected = if table == "turns" { 2 } else { 1 };
            let count = count_rows(&mut conn, table).await;
            assert_eq!(count, expected, "{table} for tenant {tenant}");
        }
        let foreign: i64 = sqlx::query_scalar("SELECT count(*) FROM calls WHERE tenant_id = $1")
            .bind(other.0)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(
            foreign, 0,
            "even an explicit filter for the other tenant finds nothing"
        );
        conn.execute("COMMIT").await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_scope_sees_nothing() {
    let db = TestDb::new(Backend::Postgres).await;
    fill_two_tenants(&db).await;
    let mut conn = app_connection(&db).await;
    for table in TENANT_TABLES {
        assert_eq!(
            count_rows(&mut conn, table).await,
            0,
            "{table} without a tenant"
        );
    }
    // The setting is transaction-local: it does not leak into the next transaction on the
    // same pooled connection.
    conn.execute("BEGIN; SELECT set_config('app.admin', 'on', true)")
        .await
        .unwrap();
    assert_eq!(count_rows(&mut conn, "calls").await, 2);
    conn.execute("COMMIT").await.unwrap();
    assert_eq!(count_rows(&mut conn, "calls").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_for_other_tenant_are_refused() {
    let db = TestDb::new(Backend::Postgres).await;
    let (alpha, beta) = fill_two_tenants(&db).await;
    let mut conn = app_connection(&db).await;
    conn.execute("BEGIN").await.unwrap();
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(alpha.0.to_string())
        .execute(&mut conn)
        .await
        .unwrap();
    let insert = sqlx::query(
        "INSERT INTO phone_numbers (number, tenant_id, created_at) VALUES ('+12025550122', $1, now())",
    )
    .bind(beta.0)
    .execute(&mut conn)
    .await;
    let err = insert.expect_err("row-level security refuses the row");
    assert!(err.to_string().contains("row-level security"), "{err}");
    conn.execute("ROLLBACK").await.unwrap();

    conn.execute("BEGIN").await.unwrap();
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(alpha.0.to_string())
        .execute(&mut conn)
        .await
        .unwrap();
    let updated = sqlx::query("UPDATE tenants SET plan = 'stolen'")
        .execute(&mut conn)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(updated, 1, "only alpha's own row is visible to the update");
    conn.execute("ROLLBACK").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_role_is_subject_to_policies() {
    let db = TestDb::new(Backend::Postgres).await;
    fill_two_tenants(&db).await;
    let mut conn = app_connection(&db).await;
    let row = sqlx::query(
        "SELECT r.rolsuper, r.rolbypassrls, c.relrowsecurity, c.relforcerowsecurity
         FROM pg_roles r, pg_class c WHERE r.rolname = current_user AND c.relname = 'calls'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(!row.get::<bool, _>(0), "not a superuser");
    assert!(!row.get::<bool, _>(1), "no BYPASSRLS");
    assert!(row.get::<bool, _>(2), "row-level security enabled");
    assert!(row.get::<bool, _>(3), "forced for the table owner");
}
