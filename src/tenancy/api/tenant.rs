//! Tenant endpoints: a tenant's own calls, usage, numbers and live events. Require one of the
//! tenant's API keys; another tenant's resources get the same 404 as missing ones.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{Datelike, NaiveDate, Utc};
use futures::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::ApiState;
use super::auth::TenantKey;
use super::body::query_problem;
use super::problem::Problem;
use crate::tenancy::{
    CallDetail, CallQuery, CallSummary, LiveEvent, PhoneNumber, TenantView, UsageDay,
};

/// Maximum usage window of one request, in days.
const MAX_USAGE_DAYS: i64 = 366;

/// Response of `GET /calls`.
#[derive(Debug, Serialize)]
pub(super) struct CallPage {
    calls: Vec<CallSummary>,
    /// Pass as `before` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_before: Option<i64>,
}

/// Query of `GET /usage`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct UsageQuery {
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
}

/// Response of `GET /usage`.
#[derive(Debug, Serialize)]
pub(super) struct UsageReport {
    from: NaiveDate,
    to: NaiveDate,
    days: Vec<UsageDay>,
    totals: UsageTotals,
}

#[derive(Debug, Default, Serialize)]
struct UsageTotals {
    calls: i64,
    minutes: i64,
    seconds: i64,
    concurrent_peak: i64,
    cost_micros: i64,
    api_requests: i64,
}

pub(super) async fn own_tenant(key: TenantKey) -> Json<TenantView> {
    Json(key.tenant.view())
}

pub(super) async fn list_calls(
    key: TenantKey,
    State(state): State<ApiState>,
    query: Result<Query<CallQuery>, QueryRejection>,
) -> Result<Json<CallPage>, Problem> {
    let Query(query) = query.map_err(query_problem)?;
    let calls = state.store.list_calls(key.tenant.id, &query).await?;
    let full_page = i64::try_from(calls.len()).unwrap_or(i64::MAX) == query.page_size();
    let next_before = calls.last().map(|call| call.id).filter(|_| full_page);
    Ok(Json(CallPage { calls, next_before }))
}

pub(super) async fn get_call(
    key: TenantKey,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<CallDetail>, Problem> {
    // An id that is not a number cannot exist; it gets the same 404 as any unknown id.
    let Ok(numeric) = id.parse::<i64>() else {
        return Err(Problem::not_found("call", &id));
    };
    state
        .store
        .call_detail(key.tenant.id, numeric)
        .await?
        .map(Json)
        .ok_or_else(|| Problem::not_found("call", &id))
}

pub(super) async fn usage(
    key: TenantKey,
    State(state): State<ApiState>,
    query: Result<Query<UsageQuery>, QueryRejection>,
) -> Result<Json<UsageReport>, Problem> {
    let Query(query) = query.map_err(query_problem)?;
    let today = Utc::now().date_naive();
    let from = query
        .from
        .unwrap_or_else(|| today.with_day(1).unwrap_or(today));
    let to = query.to.unwrap_or(today);
    if to < from {
        return Err(Problem::invalid("to", "`to` is before `from`"));
    }
    if (to - from).num_days() >= MAX_USAGE_DAYS {
        return Err(Problem::invalid(
            "to",
            format!("ask for at most {MAX_USAGE_DAYS} days at once"),
        ));
    }
    let days = state.store.usage(key.tenant.id, from, to).await?;
    let mut totals = UsageTotals::default();
    for day in &days {
        totals.calls += day.calls;
        totals.minutes += day.minutes;
        totals.seconds += day.seconds;
        totals.concurrent_peak = totals.concurrent_peak.max(day.concurrent_peak);
        totals.cost_micros += day.cost_micros;
        totals.api_requests += day.api_requests;
    }
    Ok(Json(UsageReport {
        from,
        to,
        days,
        totals,
    }))
}

pub(super) async fn numbers(
    key: TenantKey,
    State(state): State<ApiState>,
) -> Result<Json<Vec<PhoneNumber>>, Problem> {
    Ok(Json(state.store.list_numbers(Some(key.tenant.id)).await?))
}

pub(super) async fn events(
    key: TenantKey,
    State(state): State<ApiState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = state.bus.subscribe(key.tenant.id);
    tracing::debug!(tenant = %key.tenant.name, "live event stream opened");
    Sse::new(event_stream(receiver)).keep_alive(KeepAlive::default())
}

/// Turns a bus subscription into SSE events; a subscriber that fell behind gets a `lagged`
/// event with the number of events it missed.
fn event_stream(
    receiver: broadcast::Receiver<Arc<LiveEvent>>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(receiver, |mut receiver| async move {
        let event = match receiver.recv().await {
            Ok(event) => {
                let data = serde_json::to_string(&*event).unwrap_or_default();
                Event::default().event(event.name()).data(data)
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => Event::default()
                .event("lagged")
                .data(format!("{{\"missed\":{missed}}}")),
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(event), receiver))
    })
}
