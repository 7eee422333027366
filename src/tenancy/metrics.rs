//! Prometheus metrics of the tenancy layer, registered in the default registry on first use.

use std::sync::LazyLock;

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};

fn register<M: prometheus::core::Collector + Clone + 'static>(metric: M) -> M {
    // Registration fails only for a duplicate name, which would be a programming error; the
    // metric still counts, it is just not exported.
    if let Err(err) = prometheus::register(Box::new(metric.clone())) {
        tracing::warn!(error = %err, "metric registration failed");
    }
    metric
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|err| {
        panic!("invalid metric definition {name}: {err}");
    });
    register(metric)
}

fn counter(name: &str, help: &str) -> IntCounter {
    let metric = IntCounter::new(name, help).unwrap_or_else(|err| {
        panic!("invalid metric definition {name}: {err}");
    });
    register(metric)
}

/// Calls admitted, by tenant name.
pub static ADMITTED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "voicegate_admission_admitted_total",
        "Calls admitted, by tenant.",
        &["tenant"],
    )
});

/// Calls rejected at admission, by tenant name (empty when no tenant matched) and reason.
pub static REJECTED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "voicegate_admission_rejected_total",
        "Calls rejected at routing or admission, by tenant and reason.",
        &["tenant", "reason"],
    )
});

/// Call slots this node holds, by tenant name.
pub static ACTIVE_CALLS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    let opts = Opts::new(
        "voicegate_tenant_active_calls",
        "Call slots held on this node, by tenant.",
    );
    let metric = IntGaugeVec::new(opts, &["tenant"]).unwrap_or_else(|err| {
        panic!("invalid metric definition voicegate_tenant_active_calls: {err}");
    });
    register(metric)
});

/// Duration of database operations, by operation.
pub static DB_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    let opts = HistogramOpts::new(
        "voicegate_db_operation_seconds",
        "Duration of tenancy database operations, by operation.",
    )
    .buckets(vec![
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    ]);
    let metric = HistogramVec::new(opts, &["op"]).unwrap_or_else(|err| {
        panic!("invalid metric definition voicegate_db_operation_seconds: {err}");
    });
    register(metric)
});

/// Database operations slower than `database.slow_query_ms`.
pub static DB_SLOW: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "voicegate_db_slow_operations_total",
        "Tenancy database operations slower than database.slow_query_ms, by operation.",
        &["op"],
    )
});

/// Call records written to the database.
pub static RECORDS_WRITTEN: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "voicegate_records_written_total",
        "Call records written to the database.",
    )
});

/// Call records put in the local spool because the database was unavailable.
pub static RECORDS_SPOOLED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "voicegate_records_spooled_total",
        "Call records written to the local spool while the database was unavailable.",
    )
});

/// Call records the database rejected, kept in the spool's `failed` directory.
pub static RECORDS_FAILED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "voicegate_records_failed_total",
        "Call records the database rejected; kept in the spool's failed directory.",
    )
});

/// Call records waiting in the spool.
pub static SPOOL_PENDING: LazyLock<IntGauge> = LazyLock::new(|| {
    let metric = IntGauge::new(
        "voicegate_records_spool_pending",
        "Call records waiting in the local spool.",
    )
    .unwrap_or_else(|err| panic!("invalid metric definition: {err}"));
    register(metric)
});

/// Admin and tenant API requests, by HTTP status.
pub static API_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "voicegate_api_requests_total",
        "Admin and tenant API requests, by status code.",
        &["status"],
    )
});
