//! Admission on PostgreSQL: call slots are lease rows shared by every node, claimed by the
//! `voicegate_admit` function (see the migration `0003_admission.sql`) in one round trip.

use super::{Outcome, Period, RejectReason};
use crate::tenancy::error::TenancyError;
use crate::tenancy::model::{Tenant, TenantId};
use crate::tenancy::store::{Db, Scope, StoreInner, db_op};

pub(super) async fn admit(
    inner: &StoreInner,
    tenant: &Tenant,
    call_id: &str,
    period: Period,
) -> Result<Outcome, TenancyError> {
    let Db::Postgres(pool) = &inner.db else {
        return Err(TenancyError::invalid(
            "database.url",
            "not a PostgreSQL database",
        ));
    };
    let lease_secs = i64::try_from(inner.tenancy.lease_secs).unwrap_or(i64::MAX);
    let row: (String, Option<i64>, i64) = inner
        .timed("admit", async {
            let row = sqlx::query_as(
                "SELECT outcome, lease_id, active
                 FROM voicegate_admit($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(tenant.id.0)
            .bind(call_id)
            .bind(inner.node_id())
            .bind(inner.run_id())
            .bind(lease_secs)
            .bind(period.day)
            .bind(period.month_start)
            .bind(period.month_end)
            .fetch_one(pool)
            .await?;
            Ok(row)
        })
        .await?;

    let (outcome, lease_id, active) = row;
    let reason = match (outcome.as_str(), lease_id) {
        ("admitted", Some(lease_id)) => {
            let local = inner.ledger.insert(tenant.id, &tenant.name, lease_id);
            tracing::trace!(call_id, cluster_active = active, local, "lease claimed");
            let active = usize::try_from(active).unwrap_or(usize::MAX);
            return Ok(Outcome::Admitted {
                slot_id: lease_id,
                active,
            });
        }
        ("suspended", _) => RejectReason::Suspended,
        ("monthly_calls", _) => RejectReason::MonthlyCalls,
        ("monthly_minutes", _) => RejectReason::MonthlyMinutes,
        ("concurrency", _) => RejectReason::Concurrency,
        ("not_found", _) => RejectReason::NoRoute,
        (other, _) => {
            tracing::error!(
                outcome = other,
                "voicegate_admit returned an unknown outcome"
            );
            RejectReason::Unavailable
        }
    };
    Ok(Outcome::Rejected(reason))
}

/// Deletes one lease in one round trip.
pub(crate) async fn release(
    inner: &StoreInner,
    tenant: TenantId,
    lease: i64,
) -> Result<(), TenancyError> {
    let Db::Postgres(pool) = &inner.db else {
        return Ok(());
    };
    inner
        .timed("release", async {
            sqlx::query("SELECT voicegate_release($1, $2)")
                .bind(tenant.0)
                .bind(lease)
                .execute(pool)
                .await?;
            Ok(())
        })
        .await
}

/// Live leases of `tenant` across all nodes.
pub(super) async fn live_leases(
    inner: &StoreInner,
    tenant: TenantId,
) -> Result<usize, TenancyError> {
    let count: i64 = db_op!(inner, "live_leases", Scope::Tenant(tenant), pg, |conn| {
        sqlx::query_scalar(
            "SELECT count(*) FROM call_leases WHERE tenant_id = $1 AND expires_at > now()",
        )
        .bind(tenant.0)
        .fetch_one(&mut *conn)
        .await?
    })?;
    Ok(usize::try_from(count).unwrap_or(0))
}

/// The heartbeat: removes leases left by an earlier run of this node id, extends this node's
/// leases, re-creates any that another node expired meanwhile (the calls are still up, so they
/// must count), and deletes expired leases of every node.
pub(super) async fn renew(inner: &StoreInner) -> Result<(), TenancyError> {
    let Some(node) = inner.node.as_ref() else {
        return Ok(());
    };
    let held = inner.ledger.slot_ids();
    let tenants: Vec<i64> = held.iter().map(|(tenant, _)| tenant.0).collect();
    let ids: Vec<i64> = held.iter().map(|(_, id)| *id).collect();
    let lease_secs = i64::try_from(inner.tenancy.lease_secs).unwrap_or(i64::MAX);

    let counts = db_op!(inner, "renew_leases", Scope::Admin, pg, |conn| {
        let leftovers = sqlx::query("DELETE FROM call_leases WHERE node_id = $1 AND run_id <> $2")
            .bind(&node.id)
            .bind(&node.run_id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        let renewed = sqlx::query(
            "UPDATE call_leases SET expires_at = now() + make_interval(secs => $2)
             WHERE id = ANY($1)",
        )
        .bind(&ids)
        .bind(lease_secs)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        let recreated: Vec<(i64, i64)> = sqlx::query_as(
            "INSERT INTO call_leases (id, tenant_id, call_id, node_id, run_id, expires_at)
             SELECT held.id, held.tenant_id, '', $1, $2, now() + make_interval(secs => $5)
             FROM unnest($3::BIGINT[], $4::BIGINT[]) AS held (id, tenant_id)
             ON CONFLICT (id) DO NOTHING
             RETURNING tenant_id, id",
        )
        .bind(&node.id)
        .bind(&node.run_id)
        .bind(&ids)
        .bind(&tenants)
        .bind(lease_secs)
        .fetch_all(&mut *conn)
        .await?;
        let expired = sqlx::query("DELETE FROM call_leases WHERE expires_at < now()")
            .execute(&mut *conn)
            .await?
            .rows_affected();
        (leftovers, renewed, recreated, expired)
    })?;
    let (leftovers, renewed, recreated, expired) = counts;
    if leftovers > 0 {
        tracing::info!(node = %node.id, leftovers, "removed call slots left by an earlier run");
    }
    if !recreated.is_empty() {
        tracing::warn!(
            node = %node.id,
            recreated = recreated.len(),
            "leases of live calls had expired because heartbeats failed; they were re-created, \
             and the tenant limits may have been exceeded meanwhile"
        );
    }
    // A call that ended between reading the ledger and the commit found no row to delete, so
    // its re-created lease is removed here.
    for (tenant, id) in recreated {
        let tenant = TenantId(tenant);
        if !inner.ledger.holds(tenant, id) {
            release(inner, tenant, id).await?;
        }
    }
    tracing::trace!(renewed, expired, "leases renewed");
    Ok(())
}
