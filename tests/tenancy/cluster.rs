//! Several nodes sharing one PostgreSQL database: one tenant limit holds exactly across them,
//! including across OS processes, and a node that dies loses its slots once its leases expire.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use voicegate::tenancy::{CallSlot, Store, TenancyConfig, Tenant};

use super::common::{Backend, TestDb, no_default_tenant, tenant};

/// Environment of the child process that acts as a second node.
const CHILD_DB_URL: &str = "VOICEGATE_CLUSTER_CHILD_DB_URL";
const CHILD_SPOOL: &str = "VOICEGATE_CLUSTER_CHILD_SPOOL";
const CHILD_TENANT: &str = "VOICEGATE_CLUSTER_CHILD_TENANT";
const CHILD_ATTEMPTS: &str = "VOICEGATE_CLUSTER_CHILD_ATTEMPTS";

fn tenancy() -> TenancyConfig {
    TenancyConfig {
        lease_secs: 30,
        ..no_default_tenant()
    }
}

async fn admit_many(
    store: &Store,
    tenant: &Tenant,
    attempts: usize,
    prefix: &str,
) -> Vec<CallSlot> {
    let tasks: Vec<_> = (0..attempts)
        .map(|i| {
            let store = store.clone();
            let tenant = tenant.clone();
            let call_id = format!("{prefix}-{i}");
            tokio::spawn(async move { store.admit(&tenant, &call_id).await.ok() })
        })
        .collect();
    let mut slots = Vec::new();
    for task in tasks {
        if let Some(slot) = task.await.expect("admission task") {
            slots.push(slot);
        }
    }
    slots
}

/// Moves the expiry of `node`'s leases into the past, as if `lease_secs` had passed without a
/// heartbeat.
async fn expire_leases_of(db: &TestDb, node: &str) {
    db.pg_superuser_exec(&format!(
        "UPDATE call_leases SET expires_at = now() - interval '1 second' WHERE node_id = '{node}'"
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_limit() {
    let db = TestDb::new(Backend::Postgres).await;
    let node_a = db.store(&tenancy(), "node-a").await;
    let node_b = db.store(&tenancy(), "node-b").await;
    let tenant = tenant(&node_a, "shared", 12).await;

    let (slots_a, slots_b) = tokio::join!(
        admit_many(&node_a, &tenant, 40, "a"),
        admit_many(&node_b, &tenant, 40, "b"),
    );
    assert_eq!(slots_a.len() + slots_b.len(), 12);
    assert_eq!(node_a.active_calls(tenant.id).await.unwrap(), 12);
    assert_eq!(node_a.local_active_calls(tenant.id), slots_a.len());
    assert_eq!(node_b.local_active_calls(tenant.id), slots_b.len());

    // A slot released on one node is free for the other.
    let mut slots_a = slots_a;
    let mut slots_b = slots_b;
    let released = slots_a.pop().or_else(|| slots_b.pop()).expect("a slot");
    released.release().await;
    let refill = admit_many(&node_b, &tenant, 3, "refill").await;
    assert_eq!(refill.len(), 1);
    for slot in slots_a.into_iter().chain(slots_b).chain(refill) {
        slot.release().await;
    }
    assert_eq!(node_b.active_calls(tenant.id).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_node_loses_slots_after_lease() {
    let db = TestDb::new(Backend::Postgres).await;
    let node_a = db.store(&tenancy(), "node-a").await;
    let node_b = db.store(&tenancy(), "node-b").await;
    let tenant = tenant(&node_a, "failover", 4).await;

    // Node B takes every slot, then dies without releasing: no BYE, no heartbeat.
    let held = admit_many(&node_b, &tenant, 4, "b").await;
    assert_eq!(held.len(), 4);
    std::mem::forget(held);
    node_b.close().await;
    drop(node_b);

    // Until the leases expire the slots still count.
    assert!(admit_many(&node_a, &tenant, 2, "early").await.is_empty());
    assert_eq!(node_a.active_calls(tenant.id).await.unwrap(), 4);

    expire_leases_of(&db, "node-b").await;
    assert_eq!(node_a.active_calls(tenant.id).await.unwrap(), 0);
    let taken = admit_many(&node_a, &tenant, 6, "late").await;
    assert_eq!(taken.len(), 4);

    // Node A's heartbeat clears the expired rows of node B.
    node_a.renew_leases().await.unwrap();
    let rows = db
        .pg_superuser_i64("SELECT count(*) FROM call_leases WHERE node_id = 'node-b'")
        .await;
    assert_eq!(rows, 0);
    for slot in taken {
        slot.release().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_keeps_live_leases() {
    let db = TestDb::new(Backend::Postgres).await;
    let node_a = db.store(&tenancy(), "node-a").await;
    let tenant = tenant(&node_a, "beat", 2).await;
    let slots = admit_many(&node_a, &tenant, 2, "live").await;
    assert_eq!(slots.len(), 2);

    // Leases about to expire are extended by the heartbeat to a full lease_secs.
    db.pg_superuser_exec("UPDATE call_leases SET expires_at = now() + interval '1 second'")
        .await;
    node_a.renew_leases().await.unwrap();
    let soon = db
        .pg_superuser_i64(
            "SELECT count(*) FROM call_leases WHERE expires_at < now() + interval '20 seconds'",
        )
        .await;
    assert_eq!(soon, 0);

    // Leases another node deleted as expired (a late heartbeat) come back, because the calls
    // are still up and must count.
    db.pg_superuser_exec("DELETE FROM call_leases").await;
    node_a.renew_leases().await.unwrap();
    assert_eq!(node_a.active_calls(tenant.id).await.unwrap(), 2);
    assert!(admit_many(&node_a, &tenant, 1, "over").await.is_empty());

    for slot in slots {
        slot.release().await;
    }
    assert_eq!(node_a.active_calls(tenant.id).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_drops_leftover_leases() {
    let db = TestDb::new(Backend::Postgres).await;
    let first_run = db.store(&tenancy(), "node-a").await;
    let tenant = tenant(&first_run, "restart", 3).await;
    let held = admit_many(&first_run, &tenant, 3, "before").await;
    std::mem::forget(held);
    first_run.close().await;
    drop(first_run);

    let leftovers = db
        .pg_superuser_i64("SELECT count(*) FROM call_leases WHERE node_id = 'node-a'")
        .await;
    assert_eq!(leftovers, 3);

    // The first heartbeat of the new run (started on connect, repeated here) removes them.
    // The forgotten slots keep the first run's spool locked, as a crashed process would until
    // the operating system closed its files, so the second run gets a spool of its own.
    let second_run = db.store_in(&tenancy(), "node-a", "spool-second-run").await;
    second_run.renew_leases().await.unwrap();
    assert_eq!(second_run.active_calls(tenant.id).await.unwrap(), 0);
    let slots = admit_many(&second_run, &tenant, 5, "after").await;
    assert_eq!(slots.len(), 3);
    for slot in slots {
        slot.release().await;
    }
}

/// Runs a second node in another OS process (this test binary, running
/// [`cluster_child_node`]) and bursts admissions from both processes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_limit() {
    let db = TestDb::new(Backend::Postgres).await;
    let node_a = db.store(&tenancy(), "node-a").await;
    let tenant = tenant(&node_a, "processes", 15).await;

    let mut child = ChildNode(
        Command::new(std::env::current_exe().expect("test binary path"))
            .args([
                "--exact",
                "cluster::cluster_child_node",
                "--ignored",
                "--nocapture",
            ])
            .env(CHILD_DB_URL, &db.config.url)
            .env(CHILD_SPOOL, db.dir.path().join("child-spool"))
            .env(CHILD_TENANT, "processes")
            .env(CHILD_ATTEMPTS, "40")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("child node starts"),
    );
    let mut child_out = BufReader::new(child.0.stdout.take().expect("child stdout"));
    let mut child_in = child.0.stdin.take().expect("child stdin");
    wait_for_line(&mut child_out, "ready");

    child_in
        .write_all(b"go\n")
        .expect("child takes the start signal");
    let own = admit_many(&node_a, &tenant, 40, "parent").await;
    let child_line = wait_for_line(&mut child_out, "admitted=");
    let child_admitted: usize = child_line
        .trim()
        .trim_start_matches("admitted=")
        .parse()
        .expect("child reports a count");
    assert_eq!(own.len() + child_admitted, 15);
    assert_eq!(node_a.active_calls(tenant.id).await.unwrap(), 15);

    // The child dies holding its slots; they count until its leases expire.
    child.0.kill().expect("child killed");
    let _ = child.0.wait();
    assert!(admit_many(&node_a, &tenant, 3, "blocked").await.is_empty());
    expire_leases_of(&db, "node-child").await;
    let refill = admit_many(&node_a, &tenant, 40, "refill").await;
    assert_eq!(refill.len(), child_admitted);
    assert_eq!(node_a.active_calls(tenant.id).await.unwrap(), 15);
    for slot in own.into_iter().chain(refill) {
        slot.release().await;
    }
}

/// The child process, killed when the test ends on any path.
struct ChildNode(std::process::Child);

impl Drop for ChildNode {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_line(reader: &mut impl BufRead, prefix: &str) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        let read = reader.read_line(&mut line).expect("child output readable");
        assert!(read > 0, "child node exited before printing `{prefix}`");
        // libtest may print the test name on the same line before the child's output.
        if let Some(start) = line.find(prefix) {
            return line[start..].to_string();
        }
    }
}

/// Runs the second node of [`two_processes_share_one_limit`]; does nothing unless started by
/// it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "started as a child process by two_processes_share_one_limit"]
async fn cluster_child_node() {
    let Ok(url) = std::env::var(CHILD_DB_URL) else {
        return;
    };
    let spool = std::env::var(CHILD_SPOOL).expect("spool directory");
    let tenant_name = std::env::var(CHILD_TENANT).expect("tenant name");
    let attempts: usize = std::env::var(CHILD_ATTEMPTS)
        .expect("attempts")
        .parse()
        .expect("attempts is a number");
    let config = voicegate::tenancy::DatabaseConfig {
        url,
        spool_dir: spool,
        ..Default::default()
    };
    let store = Store::connect(&config, &tenancy(), "node-child")
        .await
        .expect("child store connects");
    let tenant = store
        .tenant_by_name(&tenant_name)
        .await
        .expect("tenant query")
        .expect("tenant exists");
    println!("ready");

    let mut line = String::new();
    std::io::stdin().read_line(&mut line).expect("start signal");
    let slots = admit_many(&store, &tenant, attempts, "child").await;
    println!("admitted={}", slots.len());
    // Hold the slots until the parent kills this process.
    std::mem::forget(slots);
    let _ = std::io::stdin().read_line(&mut line);
}
