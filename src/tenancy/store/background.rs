//! Background tasks of a call-taking store: spool replay, lease heartbeat and the API usage
//! flush. Each holds only a weak reference, so dropping the last [`super::Store`] ends them.

use std::sync::{Arc, Weak};
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::{Scope, Store, StoreInner, db_op, records};

/// Shortest and longest pause between spool replay attempts while the database is down.
const REPLAY_BACKOFF_MIN: Duration = Duration::from_secs(1);
const REPLAY_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How often API request counts are added to the daily usage.
const API_USAGE_FLUSH: Duration = Duration::from_secs(10);

pub(super) fn start(inner: &Arc<StoreInner>) {
    let weak = Arc::downgrade(inner);
    let cancel = inner.cancel.clone();
    inner.tasks.spawn(spool_task(weak.clone(), cancel.clone()));
    if inner.is_postgres() {
        let period = Duration::from_secs((inner.tenancy.lease_secs / 3).max(1));
        inner
            .tasks
            .spawn(heartbeat_task(weak.clone(), cancel.clone(), period));
    }
    inner.tasks.spawn(api_usage_task(weak, cancel));
}

async fn spool_task(weak: Weak<StoreInner>, cancel: CancellationToken) {
    let mut backoff = REPLAY_BACKOFF_MIN;
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let pending = inner
            .spool
            .as_ref()
            .map_or(0, |spool| spool.pending_count());
        // Every pass ends in a wait: records appended meanwhile wake the task at once, and a
        // spool that cannot be emptied is retried with growing pauses, never in a busy loop.
        let wait = if pending == 0 || replay_spool(&inner).await {
            backoff = REPLAY_BACKOFF_MIN;
            REPLAY_BACKOFF_MAX
        } else {
            backoff = (backoff * 2).min(REPLAY_BACKOFF_MAX);
            backoff
        };
        let wake = inner.spool_wake.clone();
        drop(inner);
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Writes spooled records in order until the spool is empty (true) or the database fails
/// with an error worth retrying (false). Records the database rejects for good move to
/// `failed/`.
pub(crate) async fn replay_spool(inner: &StoreInner) -> bool {
    let Some(spool) = inner.spool.as_ref() else {
        return true;
    };
    let _replaying = inner.replay_lock.lock().await;
    let paths = match spool.pending() {
        Ok(paths) => paths,
        Err(err) => {
            tracing::error!(error = %err, "cannot list the record spool");
            return false;
        }
    };
    let mut replayed = 0;
    for path in paths {
        let record = match spool.read(&path) {
            Ok(record) => record,
            Err(err) => {
                tracing::error!(error = %err, "unreadable spooled record moved to failed/");
                let _ = spool.quarantine(&path);
                continue;
            }
        };
        match records::write_record(inner, &record).await {
            Ok(_) => {
                replayed += 1;
                if let Err(err) = spool.remove(&path) {
                    // Replaying it again is harmless: records are idempotent by Call-ID.
                    tracing::error!(error = %err, "cannot delete a replayed spool file");
                }
            }
            Err(err) if err.is_transient() => {
                tracing::debug!(error = %err, "database still unavailable; spool kept");
                return false;
            }
            Err(err) => {
                tracing::error!(
                    call_id = %record.call_id,
                    error = %err,
                    "database rejected a spooled record; moved to failed/"
                );
                let _ = spool.quarantine(&path);
            }
        }
    }
    if replayed > 0 {
        tracing::info!(replayed, "record spool replayed");
    }
    true
}

async fn heartbeat_task(weak: Weak<StoreInner>, cancel: CancellationToken, period: Duration) {
    let mut failing = false;
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let store = Store { inner };
        match store.renew_leases().await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("lease heartbeat recovered");
            }
            Ok(()) => {}
            Err(err) if !failing => {
                failing = true;
                tracing::warn!(error = %err, "lease heartbeat failed; retrying");
            }
            Err(_) => {}
        }
        drop(store);
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
    }
}

async fn api_usage_task(weak: Weak<StoreInner>, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(API_USAGE_FLUSH) => {}
        }
        let Some(inner) = weak.upgrade() else { return };
        flush_api_usage(&inner).await;
    }
}

/// Adds the API requests counted in memory to today's usage; on failure the counts are kept
/// for the next attempt.
pub(crate) async fn flush_api_usage(inner: &StoreInner) {
    let counts: Vec<_> = inner.api_requests.lock().drain().collect();
    if counts.is_empty() {
        return;
    }
    let day = Utc::now().date_naive();
    let result = db_op!(inner, "api_usage", Scope::Admin, tx, |conn| {
        for (tenant, requests) in &counts {
            sqlx::query(
                "INSERT INTO usage_daily (tenant_id, day, api_requests) VALUES ($1, $2, $3)
                 ON CONFLICT (tenant_id, day) DO UPDATE
                 SET api_requests = usage_daily.api_requests + excluded.api_requests",
            )
            .bind(tenant.0)
            .bind(day)
            .bind(requests)
            .execute(&mut *conn)
            .await?;
        }
    });
    if let Err(err) = result {
        tracing::warn!(error = %err, "API usage not written; kept for the next attempt");
        let mut pending = inner.api_requests.lock();
        for (tenant, requests) in counts {
            *pending.entry(tenant).or_default() += requests;
        }
    }
}
