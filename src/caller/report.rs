//! What `voicegate call --json` and `voicegate loadtest --json` print.

use serde::Serialize;

use super::analysis::{BargeInFigures, Turn};

/// RTP figures of the stream the caller received.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RtpFigures {
    /// Packets received.
    pub received: u64,
    /// Packets lost (expected minus received, RFC 3550 §A.3).
    pub lost: u64,
    /// Interarrival jitter, in milliseconds (RFC 3550 §A.8).
    pub jitter_ms: f64,
}

/// The outcome of one test call. Times are milliseconds from the answer unless named otherwise.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CallReport {
    /// SIP Call-ID.
    pub call_id: String,
    /// Final SIP status of the INVITE (0 when none arrived).
    pub status: u16,
    /// Reason phrase of the final status.
    pub reason: String,
    /// Whether the call was answered.
    pub answered: bool,
    /// INVITE sent to 200 OK received.
    pub setup_ms: Option<f64>,
    /// Answer to the first audible AI audio.
    pub first_audio_ms: Option<f64>,
    /// One entry per caller utterance.
    pub turns: Vec<Turn>,
    /// Barge-in figures when the caller talked over the AI.
    pub barge_in: Option<BargeInFigures>,
    /// Received stream figures.
    pub rtp: RtpFigures,
    /// Codec the call used.
    pub codec: String,
    /// Answer to the end of the call.
    pub duration_ms: Option<f64>,
    /// `caller` or `server`: who sent the BYE.
    pub ended_by: String,
    /// Why the call failed, when it did.
    pub error: Option<String>,
}

/// Summary of a load test.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LoadSummary {
    /// Calls started.
    pub attempted: u64,
    /// Calls answered.
    pub answered: u64,
    /// Calls not answered or ended by an error.
    pub failed: u64,
    /// Median INVITE to 200 OK.
    pub setup_ms_p50: Option<f64>,
    /// 95th percentile INVITE to 200 OK.
    pub setup_ms_p95: Option<f64>,
    /// Lost packets over expected packets, in percent.
    pub rtp_loss_pct: f64,
    /// 95th percentile of the calls' jitter.
    pub jitter_ms_p95: Option<f64>,
    /// Median end of caller speech to first audible reply.
    pub reply_ms_p50: Option<f64>,
    /// 95th percentile end of caller speech to first audible reply.
    pub reply_ms_p95: Option<f64>,
    /// Failures counted by final status or error.
    pub failures: std::collections::BTreeMap<String, u64>,
    /// Wall time of the whole test, in seconds.
    pub elapsed_secs: f64,
}

/// Returns the `q` quantile (0..=1) of `values` by the nearest-rank method.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank - 1).copied()
}

impl LoadSummary {
    /// Summarises the reports of finished calls.
    pub fn from_reports(reports: &[CallReport], elapsed_secs: f64) -> LoadSummary {
        let mut summary = LoadSummary {
            attempted: reports.len() as u64,
            elapsed_secs,
            ..LoadSummary::default()
        };
        let mut setup = Vec::new();
        let mut jitter = Vec::new();
        let mut reply = Vec::new();
        let (mut received, mut lost) = (0u64, 0u64);

        for report in reports {
            if report.answered {
                summary.answered += 1;
                setup.extend(report.setup_ms);
                jitter.push(report.rtp.jitter_ms);
                reply.extend(report.turns.iter().filter_map(|t| t.reply_ms));
                received += report.rtp.received;
                lost += report.rtp.lost;
            }
            if let Some(failure) = failure_key(report) {
                summary.failed += 1;
                *summary.failures.entry(failure).or_default() += 1;
            }
        }

        summary.setup_ms_p50 = quantile(&setup, 0.50);
        summary.setup_ms_p95 = quantile(&setup, 0.95);
        summary.jitter_ms_p95 = quantile(&jitter, 0.95);
        summary.reply_ms_p50 = quantile(&reply, 0.50);
        summary.reply_ms_p95 = quantile(&reply, 0.95);
        let expected = received + lost;
        if expected > 0 {
            summary.rtp_loss_pct = 100.0 * lost as f64 / expected as f64;
        }
        summary
    }
}

/// Names why a call failed, or `None` when it did not.
fn failure_key(report: &CallReport) -> Option<String> {
    if let Some(error) = &report.error {
        return Some(error.clone());
    }
    if !report.answered {
        return Some(
            format!("{} {}", report.status, report.reason)
                .trim()
                .to_string(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&values, 0.5), Some(50.0));
        assert_eq!(quantile(&values, 0.95), Some(95.0));
        assert_eq!(quantile(&values, 1.0), Some(100.0));
        assert_eq!(quantile(&[7.0], 0.95), Some(7.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn summary_counts_failures_by_status() {
        let ok = CallReport {
            answered: true,
            status: 200,
            setup_ms: Some(10.0),
            rtp: RtpFigures {
                received: 99,
                lost: 1,
                jitter_ms: 2.0,
            },
            ..CallReport::default()
        };
        let busy = CallReport {
            status: 486,
            reason: "Busy Here".into(),
            ..CallReport::default()
        };
        let summary = LoadSummary::from_reports(&[ok.clone(), ok, busy], 1.0);
        assert_eq!(summary.attempted, 3);
        assert_eq!(summary.answered, 2);
        assert_eq!(summary.failed, 1);
        assert_eq!(summary.failures.get("486 Busy Here"), Some(&1));
        assert_eq!(summary.setup_ms_p50, Some(10.0));
        assert!((summary.rtp_loss_pct - 1.0).abs() < 1e-9);
    }

    #[test]
    fn answered_call_with_error_is_failed() {
        let broken = CallReport {
            answered: true,
            status: 200,
            error: Some("no RTP received".into()),
            ..CallReport::default()
        };
        let summary = LoadSummary::from_reports(&[broken], 1.0);
        assert_eq!(summary.answered, 1);
        assert_eq!(summary.failed, 1);
    }
}
