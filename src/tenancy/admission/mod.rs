//! Admission of calls against a tenant's status and limits.
//!
//! Checks, in this order: the tenant is active (else 403), its monthly calls and minutes are
//! not used up (else 403), and fewer than `max_concurrent_calls` calls are up (else 486, or 503
//! with Retry-After). An admitted call counts towards the day's usage at once, so the monthly
//! call limit holds under bursts too. On SQLite the concurrency count lives in this process
//! ([`Ledger`]); on PostgreSQL it is the number of live lease rows of all nodes, checked and
//! claimed in one statement under a per-tenant advisory lock.

mod ledger;
pub(crate) mod postgres;
mod rejection;
mod slot;
mod sqlite;

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};

pub(crate) use ledger::Ledger;
pub use rejection::{RejectReason, Rejection};
pub use slot::CallSlot;

use super::metrics;
use super::model::{Tenant, TenantId};
use super::store::{Db, Store};
use super::throttle::LogThrottle;

/// An admitted call: its tenant and slot.
#[derive(Debug)]
pub struct Admission {
    /// The tenant that takes the call, with its settings.
    pub tenant: Tenant,
    /// The call's slot; release it when the call ends.
    pub slot: CallSlot,
}

/// The calendar window a limit check looks at, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Period {
    /// Today.
    pub day: NaiveDate,
    /// First day of this month.
    pub month_start: NaiveDate,
    /// First day of next month.
    pub month_end: NaiveDate,
}

impl Period {
    pub fn at(now: DateTime<Utc>) -> Period {
        let day = now.date_naive();
        let month_start = day.with_day(1).unwrap_or(day);
        let month_end = month_start
            .checked_add_months(Months::new(1))
            .unwrap_or(NaiveDate::MAX);
        Period {
            day,
            month_start,
            month_end,
        }
    }
}

/// The result of one backend's admission attempt.
pub(crate) enum Outcome {
    Admitted { slot_id: i64, active: usize },
    Rejected(RejectReason),
}

impl Store {
    /// Finds the tenant of `dialled` and admits the call, which is all the call layer needs
    /// before it answers. Every rejection, including an unknown number, is logged and counted.
    pub async fn route_and_admit(
        &self,
        dialled: Option<&str>,
        call_id: &str,
    ) -> Result<Admission, Rejection> {
        let tenant = match self.route(dialled).await {
            Ok(Some(tenant)) => tenant,
            Ok(None) => {
                note_rejection("", call_id, RejectReason::NoRoute);
                return Err(Rejection::no_route());
            }
            Err(err) => {
                tracing::warn!(call_id, error = %err, "routing failed");
                note_rejection("", call_id, RejectReason::Unavailable);
                return Err(Rejection::unavailable(self.inner.tenancy.retry_after_secs));
            }
        };
        let slot = self.admit(&tenant, call_id).await?;
        Ok(Admission { tenant, slot })
    }

    /// Admits a call for `tenant`, or returns the rejection to send as its SIP response.
    pub async fn admit(&self, tenant: &Tenant, call_id: &str) -> Result<CallSlot, Rejection> {
        let retry_after = self.inner.tenancy.retry_after_secs;
        if self.inner.node.is_none() {
            tracing::error!(
                call_id,
                "admission on a store opened without a node identity"
            );
            return Err(Rejection::unavailable(retry_after));
        }
        let period = Period::at(Utc::now());
        let outcome = match &self.inner.db {
            Db::Sqlite(_) => sqlite::admit(&self.inner, tenant, period).await,
            Db::Postgres(_) => postgres::admit(&self.inner, tenant, call_id, period).await,
        };
        let reason = match outcome {
            Ok(Outcome::Admitted { slot_id, active }) => {
                metrics::ADMITTED.with_label_values(&[&tenant.name]).inc();
                tracing::debug!(call_id, tenant = %tenant.name, active, "call admitted");
                let inner = self.inner.clone();
                return Ok(CallSlot::new(
                    inner,
                    tenant.id,
                    &tenant.name,
                    slot_id,
                    call_id,
                ));
            }
            Ok(Outcome::Rejected(reason)) => reason,
            Err(err) => {
                tracing::warn!(call_id, tenant = %tenant.name, error = %err, "admission failed");
                RejectReason::Unavailable
            }
        };
        note_rejection(&tenant.name, call_id, reason);
        Err(rejection_for(reason, &self.inner.tenancy))
    }

    /// Call slots this node holds for `tenant`.
    pub fn local_active_calls(&self, tenant: TenantId) -> usize {
        self.inner.ledger.active(tenant)
    }

    /// Call slots held for `tenant` on every node: live leases on PostgreSQL, this node's
    /// slots on SQLite.
    pub async fn active_calls(&self, tenant: TenantId) -> Result<usize, super::TenancyError> {
        match &self.inner.db {
            Db::Sqlite(_) => Ok(self.inner.ledger.active(tenant)),
            Db::Postgres(_) => postgres::live_leases(&self.inner, tenant).await,
        }
    }

    /// Renews this node's leases and removes expired ones; the heartbeat task calls it every
    /// `lease_secs / 3` seconds.
    pub async fn renew_leases(&self) -> Result<(), super::TenancyError> {
        if self.inner.is_postgres() {
            postgres::renew(&self.inner).await?;
        }
        Ok(())
    }
}

fn rejection_for(reason: RejectReason, tenancy: &super::TenancyConfig) -> Rejection {
    match reason {
        RejectReason::NoRoute => Rejection::no_route(),
        RejectReason::Suspended | RejectReason::MonthlyCalls | RejectReason::MonthlyMinutes => {
            Rejection::forbidden(reason)
        }
        RejectReason::Concurrency => {
            Rejection::over_limit(&tenancy.over_limit, tenancy.retry_after_secs)
        }
        RejectReason::Unavailable => Rejection::unavailable(tenancy.retry_after_secs),
    }
}

/// Counts a rejection and logs it, at most once a second per tenant and reason so that a
/// burst of rejected INVITEs cannot flood the log.
fn note_rejection(tenant: &str, call_id: &str, reason: RejectReason) {
    static THROTTLE: LazyLock<LogThrottle> =
        LazyLock::new(|| LogThrottle::new(Duration::from_secs(1)));

    metrics::REJECTED
        .with_label_values(&[tenant, reason.as_str()])
        .inc();
    let key = format!("{tenant}/{}", reason.as_str());
    let Some(suppressed) = THROTTLE.check(&key, Instant::now()) else {
        return;
    };
    tracing::info!(
        call_id,
        tenant,
        reason = reason.as_str(),
        suppressed,
        "call rejected"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn period_mid_month() {
        let period = Period::at(at("2026-03-15T12:00:00Z"));
        assert_eq!(period.day, date("2026-03-15"));
        assert_eq!(period.month_start, date("2026-03-01"));
        assert_eq!(period.month_end, date("2026-04-01"));
    }

    #[test]
    fn period_wraps_year() {
        let period = Period::at(at("2026-12-31T23:59:59Z"));
        assert_eq!(period.month_start, date("2026-12-01"));
        assert_eq!(period.month_end, date("2027-01-01"));
    }

    #[test]
    fn period_uses_utc() {
        let period = Period::at(at("2026-04-01T01:00:00+03:00"));
        assert_eq!(period.day, date("2026-03-31"));
        assert_eq!(period.month_start, date("2026-03-01"));
    }

    #[test]
    fn rejection_mapping() {
        let mut tenancy = super::super::TenancyConfig::default();
        assert_eq!(
            rejection_for(RejectReason::Concurrency, &tenancy).status,
            486
        );
        tenancy.over_limit = "unavailable".into();
        let over = rejection_for(RejectReason::Concurrency, &tenancy);
        assert_eq!(over.status, 503);
        assert_eq!(over.retry_after, Some(tenancy.retry_after_secs));
        assert_eq!(rejection_for(RejectReason::Suspended, &tenancy).status, 403);
        assert_eq!(
            rejection_for(RejectReason::MonthlyCalls, &tenancy).status,
            403
        );
        assert_eq!(rejection_for(RejectReason::NoRoute, &tenancy).status, 404);
        assert_eq!(
            rejection_for(RejectReason::Unavailable, &tenancy).status,
            503
        );
    }

    #[test]
    fn rejections_are_counted() {
        let before = metrics::REJECTED
            .with_label_values(&["count-test", "suspended"])
            .get();
        for _ in 0..3 {
            note_rejection("count-test", "c", RejectReason::Suspended);
        }
        let after = metrics::REJECTED
            .with_label_values(&["count-test", "suspended"])
            .get();
        assert_eq!(after - before, 3);
    }
}
