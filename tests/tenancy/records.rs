//! Call records: what is written when a call ends, idempotency by Call-ID, and the spool that
//! keeps records while the database is unavailable.

use chrono::Utc;
use voicegate::tenancy::{CallQuery, DatabaseConfig, Store, TurnRole};

use super::common::{
    Backend, Proxy, TestDb, both_backends, no_default_tenant, pg_target, sample_record, tenant,
    through_proxy,
};

async fn record_writes_cdr_turns_usage(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.plain_store().await;
    let shop = tenant(&store, "shop", 0).await;
    let slot = store.admit(&shop, "call-1").await.unwrap();
    store.record_call(sample_record(shop.id, "call-1")).await;
    slot.release().await;

    let calls = store
        .list_calls(shop.id, &CallQuery::default())
        .await
        .unwrap();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.call_id, "call-1");
    assert_eq!(call.from, "+12025550142");
    assert_eq!(call.to, "+12025550100");
    assert_eq!(call.forwarded_from, "+12025550199");
    assert_eq!(call.node_id, "node-a");
    assert_eq!(call.duration_ms, 75_000);
    assert_eq!(call.sip_status, 200);
    assert_eq!(call.end_reason, "caller-bye");

    let detail = store
        .call_detail(shop.id, call.id)
        .await
        .unwrap()
        .expect("detail");
    assert_eq!(detail.turns.len(), 2);
    assert_eq!(detail.turns[0].role, TurnRole::Caller);
    assert_eq!(detail.turns[0].text, "when are you open");
    assert_eq!(detail.turns[1].seq, 1);
    assert!(detail.turns[1].interrupted);
    assert_eq!(
        detail.turns[1].latency_ms.get("llm_first_token"),
        Some(&420)
    );

    let today = Utc::now().date_naive();
    let usage = store.usage(shop.id, today, today).await.unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0].calls, 1, "counted at admission");
    assert_eq!(usage[0].minutes, 2, "75 s rounds up to 2 minutes");
    assert_eq!(usage[0].seconds, 75);
    assert_eq!(usage[0].cost_micros, 1_250);

    // The same Call-ID again (a replayed spool file, a retried write) adds nothing.
    store.record_call(sample_record(shop.id, "call-1")).await;
    let calls = store
        .list_calls(shop.id, &CallQuery::default())
        .await
        .unwrap();
    assert_eq!(calls.len(), 1);
    let usage = store.usage(shop.id, today, today).await.unwrap();
    assert_eq!(usage[0].minutes, 2);
    assert_eq!(store.spooled_records(), 0);
}
both_backends!(record_written, record_writes_cdr_turns_usage);

async fn call_listing_pages(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.plain_store().await;
    let shop = tenant(&store, "shop", 0).await;
    for i in 0..7 {
        store
            .record_call(sample_record(shop.id, &format!("page-{i}")))
            .await;
    }
    let first = CallQuery {
        limit: Some(3),
        ..CallQuery::default()
    };
    let page = store.list_calls(shop.id, &first).await.unwrap();
    let ids: Vec<&str> = page.iter().map(|c| c.call_id.as_str()).collect();
    assert_eq!(ids, vec!["page-6", "page-5", "page-4"]);
    let next = CallQuery {
        limit: Some(3),
        before: page.last().map(|c| c.id),
        ..CallQuery::default()
    };
    let page = store.list_calls(shop.id, &next).await.unwrap();
    let ids: Vec<&str> = page.iter().map(|c| c.call_id.as_str()).collect();
    assert_eq!(ids, vec!["page-3", "page-2", "page-1"]);
    let by_id = CallQuery {
        call_id: Some("page-2".into()),
        ..CallQuery::default()
    };
    assert_eq!(store.list_calls(shop.id, &by_id).await.unwrap().len(), 1);
}
both_backends!(call_pages, call_listing_pages);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_spools_and_replays_in_order() {
    let db = TestDb::new(Backend::Postgres).await;
    let direct = db.plain_store().await;
    let shop = tenant(&direct, "shop", 0).await;
    let proxy = Proxy::start(&pg_target(&db.config)).await;
    let config = through_proxy(&db.config, proxy.port);
    let store = Store::connect(&config, &no_default_tenant(), "node-proxy")
        .await
        .unwrap();
    assert!(store.health().await.is_ok());

    proxy.cut();
    assert!(store.health().await.is_err(), "health reports the outage");
    store.record_call(sample_record(shop.id, "during-1")).await;
    store.record_call(sample_record(shop.id, "during-2")).await;
    assert_eq!(store.spooled_records(), 2);

    proxy.restore();
    // The database is back, but older records still wait in the spool (unless the background
    // replay has written them by now), so this one must not overtake them.
    store.record_call(sample_record(shop.id, "after")).await;
    assert!(store.replay_spool().await);
    assert_eq!(store.spooled_records(), 0);

    let mut calls = direct
        .list_calls(shop.id, &CallQuery::default())
        .await
        .unwrap();
    calls.reverse();
    let order: Vec<&str> = calls.iter().map(|c| c.call_id.as_str()).collect();
    assert_eq!(order, vec!["during-1", "during-2", "after"]);
    let detail = direct
        .call_detail(shop.id, calls[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.turns.len(), 2, "turns survive the spool");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_survives_restart() {
    let db = TestDb::new(Backend::Postgres).await;
    let direct = db.plain_store().await;
    let shop = tenant(&direct, "shop", 0).await;
    let proxy = Proxy::start(&pg_target(&db.config)).await;
    let config = through_proxy(&db.config, proxy.port);

    let first_run = Store::connect(&config, &no_default_tenant(), "node-proxy")
        .await
        .unwrap();
    proxy.cut();
    for i in 0..4 {
        first_run
            .record_call(sample_record(shop.id, &format!("kept-{i}")))
            .await;
    }
    assert_eq!(first_run.spooled_records(), 4);
    // A stopped node leaves its records in the spool; closing releases the directory lock.
    first_run.close().await;
    drop(first_run);

    proxy.restore();
    let second_run = Store::connect(&config, &no_default_tenant(), "node-proxy")
        .await
        .unwrap();
    assert_eq!(second_run.spooled_records(), 4, "the spool was reopened");
    assert!(second_run.replay_spool().await);
    let calls = direct
        .list_calls(shop.id, &CallQuery::default())
        .await
        .unwrap();
    assert_eq!(calls.len(), 4);
    second_run.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_sqlite_spools_records() {
    let db = TestDb::new(Backend::Sqlite).await;
    let config = DatabaseConfig {
        timeout_ms: 300,
        ..db.config.clone()
    };
    let store = Store::connect(&config, &no_default_tenant(), "node-a")
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let shop = tenant(&store, "shop", 0).await;

    // Another process holds the write lock, as a long migration or backup would.
    let path = config.url.trim_start_matches("sqlite:").to_string();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let locker = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            use sqlx::{Connection, Executor};
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{path}"))
                .await
                .unwrap();
            conn.execute("BEGIN EXCLUSIVE").await.unwrap();
            locked_tx.send(()).unwrap();
            let _ = release_rx.recv();
            conn.execute("COMMIT").await.unwrap();
        });
    });
    locked_rx.recv().unwrap();
    store
        .record_call(sample_record(shop.id, "while-locked"))
        .await;
    assert_eq!(store.spooled_records(), 1);

    release_tx.send(()).unwrap();
    locker.join().unwrap();
    assert!(store.replay_spool().await);
    let calls = store
        .list_calls(shop.id, &CallQuery::default())
        .await
        .unwrap();
    assert_eq!(calls.len(), 1);
    store.close().await;
}

async fn rejected_record_kept_in_failed(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.plain_store().await;
    // A tenant id that does not exist violates the foreign key: retrying cannot help.
    let orphan = sample_record(voicegate::tenancy::TenantId(999_999), "orphan");
    store.record_call(orphan).await;
    assert_eq!(store.spooled_records(), 0, "not queued for retry");
    let failed = std::fs::read_dir(db.dir.path().join("spool-node-a").join("failed"))
        .unwrap()
        .count();
    assert_eq!(failed, 1);
}
both_backends!(rejected_record, rejected_record_kept_in_failed);

async fn slow_operations_are_counted(backend: Backend) {
    let db = TestDb::new(backend).await;
    let config = DatabaseConfig {
        slow_query_ms: 0,
        ..db.config.clone()
    };
    let store = Store::connect(&config, &no_default_tenant(), "node-a")
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let before = slow_count("health");
    store.health().await.unwrap();
    assert!(slow_count("health") > before);
}
both_backends!(slow_operations, slow_operations_are_counted);

fn slow_count(op: &str) -> u64 {
    let text = voicegate::observability::render_metrics();
    let prefix = format!("voicegate_db_slow_operations_total{{op=\"{op}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |value| value.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_carry_application_name() {
    let db = TestDb::new(Backend::Postgres).await;
    let store = db.plain_store().await;
    store.health().await.unwrap();
    let name = db.pg_name().unwrap().to_string();
    let named = db
        .pg_superuser_i64(&format!(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = '{name}' AND application_name = 'voicegate'"
        ))
        .await;
    assert!(named >= 1, "no connection named voicegate");
}
