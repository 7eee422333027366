//! Call detail records, turns and daily usage.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::model::TenantId;

/// Speaker of a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TurnRole {
    /// The person who called.
    Caller,
    /// The AI agent.
    Agent,
}

impl TurnRole {
    /// The value stored in the `role` column.
    pub fn as_str(self) -> &'static str {
        match self {
            TurnRole::Caller => "caller",
            TurnRole::Agent => "agent",
        }
    }

    /// Parses a stored role; anything unknown reads as the caller.
    pub fn parse(text: &str) -> TurnRole {
        if text == "agent" {
            TurnRole::Agent
        } else {
            TurnRole::Caller
        }
    }
}

/// One utterance of a call, with its final transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnRecord {
    /// Who spoke.
    pub role: TurnRole,
    /// Final transcript; for an interrupted agent turn, only the words the caller heard.
    pub text: String,
    /// When the utterance started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub ended_at: DateTime<Utc>,
    /// Latency of each pipeline stage in milliseconds (`stt_final`, `llm_first_token`,
    /// `tts_first_audio`, ...), as the AI loop measured them.
    pub latency_ms: BTreeMap<String, u64>,
    /// The caller talked over this agent turn and cut it short.
    pub interrupted: bool,
}

/// Facts of an ended call, reported by the call layer. Written once per Call-ID and tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// SIP Call-ID.
    pub call_id: String,
    /// Tenant that took the call.
    pub tenant_id: TenantId,
    /// Calling number (E.164 when it could be normalised, else as received).
    pub from: String,
    /// Dialled number in E.164.
    pub to: String,
    /// Number that forwarded the call to us, empty when it was not forwarded.
    pub forwarded_from: String,
    /// Name of the trunk the call came from.
    pub trunk: String,
    /// Negotiated codec (`pcmu`, `opus`, ...); empty when no media was set up.
    pub codec: String,
    /// When the INVITE arrived.
    pub invite_at: DateTime<Utc>,
    /// When the call was answered (200 OK sent), if it was.
    pub answer_at: Option<DateTime<Utc>>,
    /// When the call ended.
    pub end_at: DateTime<Utc>,
    /// Reason the call ended (`caller-bye`, `agent-bye`, `cancel`, `media-timeout`, `rejected`, ...).
    pub end_reason: String,
    /// Final SIP status of the INVITE (200 when answered).
    pub sip_status: u16,
    /// Provider cost of the call in millionths of the billing currency, 0 when unknown.
    pub cost_micros: i64,
    /// Turns in the order they were spoken.
    pub turns: Vec<TurnRecord>,
}

impl CallRecord {
    /// Answered time in milliseconds (answer to end), 0 for unanswered calls.
    pub fn duration_ms(&self) -> i64 {
        match self.answer_at {
            Some(answer) => (self.end_at - answer).num_milliseconds().max(0),
            None => 0,
        }
    }

    /// Billed minutes: the answered time rounded up to a whole minute.
    pub fn billed_minutes(&self) -> i64 {
        let ms = self.duration_ms();
        (ms + 59_999) / 60_000
    }
}

/// One call as listed by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct CallSummary {
    /// Database id, used in `/v1/calls/{id}`.
    pub id: i64,
    /// SIP Call-ID.
    pub call_id: String,
    /// Calling number.
    #[sqlx(rename = "from_number")]
    pub from: String,
    /// Dialled number.
    #[sqlx(rename = "to_number")]
    pub to: String,
    /// Forwarding number, empty when not forwarded.
    pub forwarded_from: String,
    /// Trunk name.
    pub trunk: String,
    /// Node that handled the call.
    pub node_id: String,
    /// Codec.
    pub codec: String,
    /// When the INVITE arrived.
    pub invite_at: DateTime<Utc>,
    /// When it was answered.
    pub answer_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub end_at: DateTime<Utc>,
    /// Answered time in milliseconds.
    pub duration_ms: i64,
    /// Reason the call ended.
    pub end_reason: String,
    /// Final SIP status.
    pub sip_status: i64,
    /// Provider cost in millionths of the billing currency.
    pub cost_micros: i64,
}

/// A stored turn as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredTurn {
    /// Position in the call, from 0.
    pub seq: i64,
    /// Who spoke.
    pub role: TurnRole,
    /// Transcript.
    pub text: String,
    /// Start of the utterance.
    pub started_at: DateTime<Utc>,
    /// End of the utterance.
    pub ended_at: DateTime<Utc>,
    /// Latency of each stage in milliseconds.
    pub latency_ms: BTreeMap<String, u64>,
    /// The caller cut this turn short.
    pub interrupted: bool,
}

/// A call with its transcript and latency trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallDetail {
    /// The CDR.
    #[serde(flatten)]
    pub call: CallSummary,
    /// Turns in order.
    pub turns: Vec<StoredTurn>,
}

/// Usage of one tenant on one day (UTC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct UsageDay {
    /// The day.
    pub day: NaiveDate,
    /// Calls admitted.
    pub calls: i64,
    /// Billed minutes of calls that started that day.
    pub minutes: i64,
    /// Answered seconds of calls that started that day.
    pub seconds: i64,
    /// Most calls up at the same time, as seen at admission.
    pub concurrent_peak: i64,
    /// Provider cost in millionths of the billing currency.
    pub cost_micros: i64,
    /// Requests made with the tenant's API keys.
    pub api_requests: i64,
}

/// Filters of a call listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallQuery {
    /// Most calls to return (1 to 500, default 50).
    pub limit: Option<u32>,
    /// Return only calls with a smaller id than this, for paging backwards.
    pub before: Option<i64>,
    /// Return only calls with this SIP Call-ID.
    pub call_id: Option<String>,
}

impl CallQuery {
    /// The effective page size.
    pub fn page_size(&self) -> i64 {
        i64::from(self.limit.unwrap_or(50).clamp(1, 500))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(answer_after_ms: Option<i64>, end_after_ms: i64) -> CallRecord {
        let invite = DateTime::parse_from_rfc3339("2026-03-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        CallRecord {
            call_id: "c1".into(),
            tenant_id: TenantId(1),
            from: "+12025550142".into(),
            to: "+12025550100".into(),
            forwarded_from: String::new(),
            trunk: "loopback".into(),
            codec: "pcmu".into(),
            invite_at: invite,
            answer_at: answer_after_ms.map(|ms| invite + chrono::Duration::milliseconds(ms)),
            end_at: invite + chrono::Duration::milliseconds(end_after_ms),
            end_reason: "caller-bye".into(),
            sip_status: 200,
            cost_micros: 0,
            turns: vec![],
        }
    }

    #[test]
    fn unanswered_call_bills_nothing() {
        let call = record(None, 5_000);
        assert_eq!(call.duration_ms(), 0);
        assert_eq!(call.billed_minutes(), 0);
    }

    #[test]
    fn minutes_round_up() {
        assert_eq!(record(Some(1_000), 2_000).billed_minutes(), 1);
        assert_eq!(record(Some(0), 60_000).billed_minutes(), 1);
        assert_eq!(record(Some(0), 60_001).billed_minutes(), 2);
    }

    #[test]
    fn end_before_answer_counts_zero() {
        assert_eq!(record(Some(5_000), 1_000).duration_ms(), 0);
    }

    #[test]
    fn page_size_clamped() {
        assert_eq!(CallQuery::default().page_size(), 50);
        let huge = CallQuery {
            limit: Some(10_000),
            ..Default::default()
        };
        assert_eq!(huge.page_size(), 500);
        let zero = CallQuery {
            limit: Some(0),
            ..Default::default()
        };
        assert_eq!(zero.page_size(), 1);
    }
}
