//! The in-process event bus behind the live event stream (`GET /v1/events`).
//!
//! The call layer publishes what happens in a call; each tenant's subscribers receive only that
//! tenant's events. Publishing never blocks: events for a tenant without subscribers are dropped,
//! and a subscriber that falls more than [`CHANNEL_CAPACITY`] events behind skips the oldest
//! and is told how many it missed.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::broadcast;

use super::model::TenantId;
use super::record::TurnRole;

/// Events buffered per tenant for slow subscribers.
pub const CHANNEL_CAPACITY: usize = 256;

/// Something that happened in a call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveEvent {
    /// SIP Call-ID.
    pub call_id: String,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened.
    #[serde(flatten)]
    pub kind: LiveEventKind,
}

impl LiveEvent {
    /// Builds an event stamped with the current time.
    pub fn now(call_id: impl Into<String>, kind: LiveEventKind) -> LiveEvent {
        LiveEvent {
            call_id: call_id.into(),
            at: Utc::now(),
            kind,
        }
    }

    /// Returns the SSE event name: `call_started`, `transcript`, ...
    pub fn name(&self) -> &'static str {
        match self.kind {
            LiveEventKind::CallStarted { .. } => "call_started",
            LiveEventKind::CallState { .. } => "call_state",
            LiveEventKind::Transcript { .. } => "transcript",
            LiveEventKind::BargeIn { .. } => "barge_in",
            LiveEventKind::TurnLatency { .. } => "turn_latency",
            LiveEventKind::CallEnded { .. } => "call_ended",
        }
    }
}

/// The kinds of [`LiveEvent`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEventKind {
    /// A call was admitted.
    CallStarted {
        /// Calling number.
        from: String,
        /// Dialled number.
        to: String,
    },
    /// The call changed state (`ringing`, `answered`, `on_hold`, `transferring`, ...).
    CallState {
        /// New state.
        state: String,
    },
    /// A partial or final transcript of an utterance.
    Transcript {
        /// Who spoke.
        role: TurnRole,
        /// The words so far.
        text: String,
        /// Whether this is the final transcript of the utterance.
        is_final: bool,
    },
    /// The caller talked over the AI, which stopped.
    BargeIn {
        /// The part of the AI's reply the caller heard before it stopped.
        heard_text: String,
    },
    /// An agent turn finished; its latency per pipeline stage in milliseconds from the end
    /// of the caller's speech.
    TurnLatency {
        /// Stage name (`stt_final`, `llm_first_token`, ...) to milliseconds.
        stages: std::collections::BTreeMap<String, u64>,
    },
    /// The call ended.
    CallEnded {
        /// Reason the call ended (`caller-bye`, `agent-bye`, `media-timeout`, ...).
        reason: String,
        /// Answered time in milliseconds.
        duration_ms: i64,
    },
}

/// A tenant-partitioned broadcast of [`LiveEvent`]s. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct EventBus {
    channels: Arc<Mutex<HashMap<TenantId, broadcast::Sender<Arc<LiveEvent>>>>>,
}

impl EventBus {
    /// Creates an empty bus.
    pub fn new() -> EventBus {
        EventBus::default()
    }

    /// Sends `event` to the subscribers of `tenant`; does nothing when there are none.
    pub fn publish(&self, tenant: TenantId, event: LiveEvent) {
        let mut channels = self.channels.lock();
        let Some(sender) = channels.get(&tenant) else {
            return;
        };
        if sender.send(Arc::new(event)).is_err() {
            // The last subscriber left; drop the channel so idle tenants cost nothing.
            channels.remove(&tenant);
        }
    }

    /// Subscribes to the events of `tenant` from now on.
    pub fn subscribe(&self, tenant: TenantId) -> broadcast::Receiver<Arc<LiveEvent>> {
        let mut channels = self.channels.lock();
        let sender = channels
            .entry(tenant)
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0);
        sender.subscribe()
    }

    /// Subscribers of `tenant`.
    pub fn subscriber_count(&self, tenant: TenantId) -> usize {
        self.channels
            .lock()
            .get(&tenant)
            .map_or(0, broadcast::Sender::receiver_count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(call_id: &str) -> LiveEvent {
        LiveEvent::now(
            call_id,
            LiveEventKind::CallEnded {
                reason: "caller-bye".into(),
                duration_ms: 1_000,
            },
        )
    }

    #[tokio::test]
    async fn subscribers_see_only_their_tenant() {
        let bus = EventBus::new();
        let mut a = bus.subscribe(TenantId(1));
        let mut b = bus.subscribe(TenantId(2));
        bus.publish(TenantId(1), ended("for-a"));
        bus.publish(TenantId(2), ended("for-b"));
        assert_eq!(a.recv().await.unwrap().call_id, "for-a");
        assert_eq!(b.recv().await.unwrap().call_id, "for-b");
        assert!(a.try_recv().is_err());
        assert!(b.try_recv().is_err());
    }

    #[test]
    fn publish_without_subscribers_is_dropped() {
        let bus = EventBus::new();
        bus.publish(TenantId(1), ended("nobody"));
        let receiver = bus.subscribe(TenantId(1));
        drop(receiver);
        bus.publish(TenantId(1), ended("left"));
        assert_eq!(bus.subscriber_count(TenantId(1)), 0);
        assert!(bus.channels.lock().is_empty());
    }

    #[tokio::test]
    async fn slow_subscriber_is_told_it_lagged() {
        let bus = EventBus::new();
        let mut receiver = bus.subscribe(TenantId(1));
        for i in 0..CHANNEL_CAPACITY + 5 {
            bus.publish(TenantId(1), ended(&format!("c{i}")));
        }
        match receiver.recv().await {
            Err(broadcast::error::RecvError::Lagged(missed)) => assert_eq!(missed, 5),
            other => panic!("expected a lag notice, got {other:?}"),
        }
    }

    #[test]
    fn event_serialises_with_type_tag() {
        let event = LiveEvent::now(
            "c1",
            LiveEventKind::Transcript {
                role: TurnRole::Caller,
                text: "hello".into(),
                is_final: false,
            },
        );
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], "transcript");
        assert_eq!(json["call_id"], "c1");
        assert_eq!(json["role"], "caller");
        assert_eq!(json["is_final"], false);
        assert_eq!(event.name(), "transcript");
    }
}
