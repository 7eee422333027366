//! Admission on SQLite: one node, so the concurrency limit is the in-process [`super::Ledger`]
//! and the monthly limits are checked and counted by one atomic statement.

use super::{Outcome, Period, RejectReason};
use crate::tenancy::error::TenancyError;
use crate::tenancy::model::{Tenant, TenantStatus};
use crate::tenancy::store::{Scope, StoreInner, db_op};

/// Counts the call in today's usage when the tenant is active and below its monthly limits.
/// A single SQLite write statement is atomic, so concurrent admissions cannot both pass the
/// last free call of the month.
const COUNT_CALL: &str = "
INSERT INTO usage_daily (tenant_id, day, calls, concurrent_peak)
SELECT t.id, $2, 1, $3 FROM tenants t
WHERE t.id = $1 AND t.status = 'active'
  AND (t.monthly_call_limit = 0 OR t.monthly_call_limit >
       (SELECT coalesce(sum(u.calls), 0) FROM usage_daily u
        WHERE u.tenant_id = $1 AND u.day >= $4 AND u.day < $5))
  AND (t.monthly_minute_limit = 0 OR t.monthly_minute_limit >
       (SELECT coalesce(sum(u.minutes), 0) FROM usage_daily u
        WHERE u.tenant_id = $1 AND u.day >= $4 AND u.day < $5))
ON CONFLICT (tenant_id, day) DO UPDATE
SET calls = usage_daily.calls + 1,
    concurrent_peak = max(usage_daily.concurrent_peak, excluded.concurrent_peak)";

/// The tenant's status, limits and this month's usage, to explain a rejection.
const LIMIT_STATE: &str = "
SELECT t.status, t.monthly_call_limit, t.monthly_minute_limit,
       coalesce(sum(u.calls), 0), coalesce(sum(u.minutes), 0)
FROM tenants t
LEFT JOIN usage_daily u ON u.tenant_id = t.id AND u.day >= $2 AND u.day < $3
WHERE t.id = $1
GROUP BY t.id, t.status, t.monthly_call_limit, t.monthly_minute_limit";

pub(super) async fn admit(
    inner: &StoreInner,
    tenant: &Tenant,
    period: Period,
) -> Result<Outcome, TenancyError> {
    let limit = tenant.limits.max_concurrent_calls;
    let Some((slot_id, active)) = inner.ledger.try_reserve(tenant.id, &tenant.name, limit) else {
        // Suspension and monthly limits take precedence over the concurrency limit.
        let reason = explain(inner, tenant, period).await?;
        return Ok(Outcome::Rejected(
            reason.unwrap_or(RejectReason::Concurrency),
        ));
    };

    let counted = db_op!(inner, "admit", Scope::Tenant(tenant.id), conn, |conn| {
        sqlx::query(COUNT_CALL)
            .bind(tenant.id.0)
            .bind(period.day)
            .bind(i64::try_from(active).unwrap_or(i64::MAX))
            .bind(period.month_start)
            .bind(period.month_end)
            .execute(&mut *conn)
            .await?
            .rows_affected()
    });
    match counted {
        Ok(1) => Ok(Outcome::Admitted { slot_id, active }),
        Ok(_) => {
            inner.ledger.remove(tenant.id, slot_id);
            let reason = explain(inner, tenant, period).await?;
            Ok(Outcome::Rejected(reason.unwrap_or(RejectReason::NoRoute)))
        }
        Err(err) => {
            inner.ledger.remove(tenant.id, slot_id);
            Err(err)
        }
    }
}

/// Finds which status or monthly rule rejects the tenant now, if any. A tenant that no longer
/// exists reads as [`RejectReason::NoRoute`].
async fn explain(
    inner: &StoreInner,
    tenant: &Tenant,
    period: Period,
) -> Result<Option<RejectReason>, TenancyError> {
    let row: Option<(String, i64, i64, i64, i64)> = db_op!(
        inner,
        "admit_explain",
        Scope::Tenant(tenant.id),
        conn,
        |conn| {
            sqlx::query_as(LIMIT_STATE)
                .bind(tenant.id.0)
                .bind(period.month_start)
                .bind(period.month_end)
                .fetch_optional(&mut *conn)
                .await?
        }
    )?;
    let Some((status, call_limit, minute_limit, calls, minutes)) = row else {
        return Ok(Some(RejectReason::NoRoute));
    };
    let reason = if TenantStatus::parse(&status) != Some(TenantStatus::Active) {
        Some(RejectReason::Suspended)
    } else if call_limit > 0 && calls >= call_limit {
        Some(RejectReason::MonthlyCalls)
    } else if minute_limit > 0 && minutes >= minute_limit {
        Some(RejectReason::MonthlyMinutes)
    } else {
        None
    };
    Ok(reason)
}
