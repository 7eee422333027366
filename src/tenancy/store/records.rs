//! Call records, turns and usage: writing them when a call ends, and reading them for the API.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::QueryBuilder;
use sqlx::types::Json;

use super::{Scope, Store, StoreInner, db_op};
use crate::observability::Private;
use crate::tenancy::error::TenancyError;
use crate::tenancy::model::TenantId;
use crate::tenancy::record::{
    CallDetail, CallQuery, CallRecord, CallSummary, StoredTurn, TurnRole, UsageDay,
};

/// Turns inserted per statement; 9 parameters each stays far below both databases' limits.
const TURNS_PER_INSERT: usize = 200;

const CALL_COLUMNS: &str = "id, call_id, from_number, to_number, forwarded_from, trunk, node_id, \
     codec, invite_at, answer_at, end_at, duration_ms, end_reason, sip_status, cost_micros";

impl Store {
    /// Writes the CDR, turns and usage of an ended call. Never fails: when the database is
    /// unavailable, or the spool still contains older records, the record goes to the local
    /// spool and is written, in order, once the database is back. A record the database rejects
    /// for good is kept in the spool's `failed/` directory.
    pub async fn record_call(&self, record: CallRecord) {
        let inner = &self.inner;
        let Some(spool) = inner.spool.as_ref() else {
            tracing::error!(call_id = %record.call_id, "record on a store without a spool");
            return;
        };
        if spool.pending_count() == 0 {
            match write_record(inner, &record).await {
                Ok(_) => return,
                Err(err) if err.is_transient() => {
                    let throttle = &inner.log_throttle;
                    if let Some(suppressed) = throttle.check("record_spooled", Instant::now()) {
                        tracing::warn!(call_id = %record.call_id, error = %err, suppressed,
                            "database unavailable; call record spooled");
                    }
                }
                Err(err) => {
                    tracing::error!(call_id = %record.call_id, error = %err,
                        "database rejected the call record; kept in the spool's failed/");
                    spool_record(inner, record, true).await;
                    return;
                }
            }
        }
        spool_record(inner, record, false).await;
    }

    /// Lists the calls of `tenant`, newest first.
    pub async fn list_calls(
        &self,
        tenant: TenantId,
        query: &CallQuery,
    ) -> Result<Vec<CallSummary>, TenancyError> {
        let before = query.before.unwrap_or(i64::MAX);
        let call_id = query.call_id.as_deref();
        db_op!(
            self.inner,
            "list_calls",
            Scope::Tenant(tenant),
            conn,
            |conn| {
                let mut sql = QueryBuilder::new(format!("SELECT {CALL_COLUMNS} FROM calls WHERE "));
                sql.push("tenant_id = ").push_bind(tenant.0);
                sql.push(" AND id < ").push_bind(before);
                if let Some(call_id) = call_id {
                    sql.push(" AND call_id = ").push_bind(call_id);
                }
                sql.push(" ORDER BY id DESC LIMIT ")
                    .push_bind(query.page_size());
                sql.build_query_as::<CallSummary>()
                    .fetch_all(&mut *conn)
                    .await?
            }
        )
    }

    /// Loads one call of `tenant` with its turns; `None` when the id does not exist or belongs
    /// to another tenant.
    pub async fn call_detail(
        &self,
        tenant: TenantId,
        id: i64,
    ) -> Result<Option<CallDetail>, TenancyError> {
        db_op!(
            self.inner,
            "call_detail",
            Scope::Tenant(tenant),
            conn,
            |conn| {
                let call: Option<CallSummary> = sqlx::query_as(
                    "SELECT id, call_id, from_number, to_number, forwarded_from, trunk, node_id,
                        codec, invite_at, answer_at, end_at, duration_ms, end_reason,
                        sip_status, cost_micros
                 FROM calls WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant.0)
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
                match call {
                    None => None,
                    Some(call) => {
                        let rows: Vec<TurnRow> = sqlx::query_as(
                            "SELECT seq, role, text, started_at, ended_at, latency_ms, interrupted
                         FROM turns WHERE tenant_id = $1 AND call_pk = $2 ORDER BY seq",
                        )
                        .bind(tenant.0)
                        .bind(call.id)
                        .fetch_all(&mut *conn)
                        .await?;
                        let turns = rows.into_iter().map(TurnRow::into_turn).collect();
                        Some(CallDetail { call, turns })
                    }
                }
            }
        )
    }

    /// Daily usage of `tenant` from `from` to `to`, both included.
    pub async fn usage(
        &self,
        tenant: TenantId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<UsageDay>, TenancyError> {
        db_op!(self.inner, "usage", Scope::Tenant(tenant), conn, |conn| {
            sqlx::query_as(
                "SELECT day, calls, minutes, seconds, concurrent_peak, cost_micros, api_requests
                 FROM usage_daily WHERE tenant_id = $1 AND day >= $2 AND day <= $3
                 ORDER BY day",
            )
            .bind(tenant.0)
            .bind(from)
            .bind(to)
            .fetch_all(&mut *conn)
            .await?
        })
    }

    /// Counts one API request of `tenant`; counts reach the daily usage every few seconds.
    pub fn count_api_request(&self, tenant: TenantId) {
        *self.inner.api_requests.lock().entry(tenant).or_default() += 1;
    }

    /// Writes the API request counts now instead of waiting for the periodic flush.
    pub async fn flush_api_usage(&self) {
        super::background::flush_api_usage(&self.inner).await;
    }

    /// Records waiting in the local spool.
    pub fn spooled_records(&self) -> usize {
        self.inner
            .spool
            .as_ref()
            .map_or(0, |spool| spool.pending_count())
    }

    /// Tries to write the spooled records now; returns true when the spool is empty.
    pub async fn replay_spool(&self) -> bool {
        super::background::replay_spool(&self.inner).await
    }
}

/// Appends to the spool (or to its `failed/` directory) on the blocking pool, because the
/// append waits for fsync.
async fn spool_record(inner: &Arc<StoreInner>, record: CallRecord, failed: bool) {
    let call_id = record.call_id.clone();
    let owner = inner.clone();
    let result = tokio::task::spawn_blocking(move || {
        let Some(spool) = owner.spool.as_ref() else {
            return Ok(());
        };
        if failed {
            spool.append_failed(&record).map(drop)
        } else {
            spool.append(&record).map(drop)
        }
    })
    .await;
    match result {
        Ok(Ok(())) if !failed => inner.spool_wake.notify_one(),
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::error!(
            call_id = %call_id,
            error = %err,
            "call record lost: it could not be written to the database or the spool"
        ),
        Err(err) => tracing::error!(call_id = %call_id, error = %err, "call record lost"),
    }
}

/// Writes one record in one transaction: the CDR (skipped with everything else when the
/// Call-ID was already written), its turns, and the day's minutes, seconds and cost. Returns
/// whether the record was new.
pub(crate) async fn write_record(
    inner: &StoreInner,
    record: &CallRecord,
) -> Result<bool, TenancyError> {
    let tenant = record.tenant_id;
    let node = inner.node_id();
    let written = db_op!(inner, "record_call", Scope::Tenant(tenant), tx, |conn| {
        let call_pk: Option<i64> = sqlx::query_scalar(
            "INSERT INTO calls (tenant_id, call_id, from_number, to_number, forwarded_from,
                 trunk, node_id, codec, invite_at, answer_at, end_at, duration_ms, end_reason,
                 sip_status, cost_micros)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
             ON CONFLICT (tenant_id, call_id) DO NOTHING
             RETURNING id",
        )
        .bind(tenant.0)
        .bind(&record.call_id)
        .bind(&record.from)
        .bind(&record.to)
        .bind(&record.forwarded_from)
        .bind(&record.trunk)
        .bind(node)
        .bind(&record.codec)
        .bind(record.invite_at)
        .bind(record.answer_at)
        .bind(record.end_at)
        .bind(record.duration_ms())
        .bind(&record.end_reason)
        .bind(i64::from(record.sip_status))
        .bind(record.cost_micros)
        .fetch_optional(&mut *conn)
        .await?;
        match call_pk {
            None => false,
            Some(call_pk) => {
                for (chunk_index, chunk) in record.turns.chunks(TURNS_PER_INSERT).enumerate() {
                    let first_seq = chunk_index * TURNS_PER_INSERT;
                    let mut sql = QueryBuilder::new(
                        "INSERT INTO turns (call_pk, tenant_id, seq, role, text, started_at, \
                         ended_at, latency_ms, interrupted) ",
                    );
                    sql.push_values(chunk.iter().enumerate(), |mut row, (i, turn)| {
                        row.push_bind(call_pk)
                            .push_bind(tenant.0)
                            .push_bind(i64::try_from(first_seq + i).unwrap_or(i64::MAX))
                            .push_bind(turn.role.as_str())
                            .push_bind(&turn.text)
                            .push_bind(turn.started_at)
                            .push_bind(turn.ended_at)
                            .push_bind(Json(&turn.latency_ms))
                            .push_bind(turn.interrupted);
                    });
                    sql.build().execute(&mut *conn).await?;
                }
                sqlx::query(
                    "INSERT INTO usage_daily (tenant_id, day, minutes, seconds, cost_micros)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (tenant_id, day) DO UPDATE
                     SET minutes = usage_daily.minutes + excluded.minutes,
                         seconds = usage_daily.seconds + excluded.seconds,
                         cost_micros = usage_daily.cost_micros + excluded.cost_micros",
                )
                .bind(tenant.0)
                .bind(record.invite_at.date_naive())
                .bind(record.billed_minutes())
                .bind(record.duration_ms() / 1000)
                .bind(record.cost_micros)
                .execute(&mut *conn)
                .await?;
                true
            }
        }
    })?;
    if written {
        crate::tenancy::metrics::RECORDS_WRITTEN.inc();
        tracing::debug!(
            call_id = %record.call_id,
            from = %Private(&record.from),
            turns = record.turns.len(),
            "call record written"
        );
    } else {
        tracing::debug!(call_id = %record.call_id, "call record already written");
    }
    Ok(written)
}

#[derive(sqlx::FromRow)]
struct TurnRow {
    seq: i64,
    role: String,
    text: String,
    started_at: DateTime<Utc>,
    ended_at: DateTime<Utc>,
    latency_ms: Json<BTreeMap<String, u64>>,
    interrupted: bool,
}

impl TurnRow {
    fn into_turn(self) -> StoredTurn {
        StoredTurn {
            seq: self.seq,
            role: TurnRole::parse(&self.role),
            text: self.text,
            started_at: self.started_at,
            ended_at: self.ended_at,
            latency_ms: self.latency_ms.0,
            interrupted: self.interrupted,
        }
    }
}
