//! The load tester: many scripted calls from one dialer, started at a fixed rate with a cap
//! on how many run at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use super::dialer::{CallSettings, Dialer};
use super::report::{CallReport, LoadSummary};

/// Interval between progress reports.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// Shape of a load test.
#[derive(Debug, Clone)]
pub struct LoadSettings {
    /// Calls to place in total.
    pub calls: u64,
    /// New calls per second.
    pub rate: f64,
    /// Calls up at once at most; a new call waits for a free slot.
    pub concurrency: usize,
    /// Settings of each call.
    pub call: CallSettings,
}

/// Counts shown while the test runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Calls started so far.
    pub started: u64,
    /// Calls running now.
    pub active: u64,
    /// Finished calls that were answered without error.
    pub succeeded: u64,
    /// Finished calls that failed.
    pub failed: u64,
}

#[derive(Default)]
struct Counters {
    started: AtomicU64,
    finished: AtomicU64,
    failed: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> Progress {
        let started = self.started.load(Ordering::Relaxed);
        let finished = self.finished.load(Ordering::Relaxed);
        let failed = self.failed.load(Ordering::Relaxed);
        Progress {
            started,
            active: started.saturating_sub(finished),
            succeeded: finished.saturating_sub(failed),
            failed,
        }
    }
}

/// Runs the load test and summarises every call placed. `progress` is called about once a
/// second with the time since the start. When `interrupt` resolves, no new call starts and
/// the calls up are ended with BYE.
pub async fn run(
    dialer: Arc<Dialer>,
    settings: LoadSettings,
    interrupt: impl Future<Output = ()>,
    mut progress: impl FnMut(Duration, Progress),
) -> LoadSummary {
    tokio::pin!(interrupt);
    let mut interrupted = false;
    let start = Instant::now();
    let counters = Arc::new(Counters::default());
    let slots = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let call = Arc::new(settings.call);
    let mut calls: JoinSet<CallReport> = JoinSet::new();
    let mut reports = Vec::with_capacity(usize::try_from(settings.calls).unwrap_or(0));

    let period = Duration::from_secs_f64(1.0 / settings.rate.max(1e-3));
    let mut pacing = tokio::time::interval(period);
    pacing.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut report_timer = tokio::time::interval_at(
        tokio::time::Instant::now() + PROGRESS_INTERVAL,
        PROGRESS_INTERVAL,
    );
    let mut placed = 0u64;

    while (placed < settings.calls && !interrupted) || !calls.is_empty() {
        let more = placed < settings.calls && !interrupted;
        tokio::select! {
            () = &mut interrupt, if !interrupted => {
                interrupted = true;
                dialer.shutdown().await;
            }
            _ = pacing.tick(), if more && slots.available_permits() > 0 => {
                // Only this loop takes permits, so one is free.
                let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else { continue };
                placed += 1;
                counters.started.fetch_add(1, Ordering::Relaxed);
                let (dialer, call, counters) = (Arc::clone(&dialer), Arc::clone(&call), Arc::clone(&counters));
                calls.spawn(async move {
                    let report = dialer.call(&call).await;
                    if report.error.is_some() || !report.answered {
                        counters.failed.fetch_add(1, Ordering::Relaxed);
                    }
                    counters.finished.fetch_add(1, Ordering::Relaxed);
                    drop(permit);
                    report
                });
            }
            Some(finished) = calls.join_next() => match finished {
                Ok(report) => reports.push(report),
                Err(error) => reports.push(CallReport {
                    error: Some(format!("call task failed: {error}")),
                    ..CallReport::default()
                }),
            },
            _ = report_timer.tick() => progress(start.elapsed(), counters.snapshot()),
        }
    }
    progress(start.elapsed(), counters.snapshot());
    LoadSummary::from_reports(&reports, start.elapsed().as_secs_f64())
}
