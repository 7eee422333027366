//! The streamed reply shared by the chat clients: reads an SSE body, hands each event to a
//! provider-specific parser, and records the timing the conversation loop's deadlines act on
//! (time to first token, longest pause between tokens).
//!
//! The stream ends after [`LlmEvent::Done`] or after the first error. Dropping it closes the
//! connection, which cancels the generation at the provider.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures::stream::{self, BoxStream, StreamExt};

use super::http::BodyReader;
use super::metrics;
use super::sse::{SseDecoder, SseEvent};
use crate::ai::provider::{LlmEvent, ProviderError};

/// A provider-specific reader of SSE events.
pub trait ReplyParser: Send + 'static {
    /// Handles one event, pushing the reply pieces it completes onto `out`. Returns true when
    /// the reply is finished (after pushing [`LlmEvent::Done`]).
    fn on_event(
        &mut self,
        event: &SseEvent,
        out: &mut VecDeque<LlmEvent>,
    ) -> Result<bool, ProviderError>;

    /// Handles the end of the body before the parser reported the reply finished. Returns an
    /// error unless the provider's framing allows that end.
    fn on_end(&mut self, out: &mut VecDeque<LlmEvent>) -> Result<(), ProviderError>;
}

/// Token timing of one reply, recorded as metrics when the reply ends or is dropped.
#[derive(Debug)]
pub struct TokenTiming {
    provider: &'static str,
    started: Instant,
    first: Option<Instant>,
    last: Option<Instant>,
    longest_gap: Duration,
}

impl TokenTiming {
    /// Starts timing at `started`, the moment the request was sent.
    pub fn new(provider: &'static str, started: Instant) -> Self {
        Self {
            provider,
            started,
            first: None,
            last: None,
            longest_gap: Duration::ZERO,
        }
    }

    /// Records a token or tool call produced at `now`.
    pub fn record(&mut self, now: Instant) {
        if self.first.is_none() {
            self.first = Some(now);
        }
        if let Some(last) = self.last {
            self.longest_gap = self.longest_gap.max(now.saturating_duration_since(last));
        }
        self.last = Some(now);
    }

    /// Time from the request to the first token, if one arrived.
    pub fn first_token(&self) -> Option<Duration> {
        self.first
            .map(|first| first.saturating_duration_since(self.started))
    }

    /// Longest pause between two tokens so far.
    pub fn longest_gap(&self) -> Duration {
        self.longest_gap
    }
}

impl Drop for TokenTiming {
    fn drop(&mut self) {
        let Some(first) = self.first_token() else {
            return;
        };
        metrics::FIRST_TOKEN
            .with_label_values(&[self.provider])
            .observe(first.as_secs_f64());
        metrics::TOKEN_GAP
            .with_label_values(&[self.provider])
            .observe(self.longest_gap.as_secs_f64());
    }
}

struct ReplyState<P> {
    provider: &'static str,
    body: BodyReader,
    decoder: SseDecoder,
    parser: P,
    ready: VecDeque<LlmEvent>,
    finished: bool,
    timing: TokenTiming,
}

/// Turns an SSE response body into reply events.
pub fn reply_stream<P: ReplyParser>(
    provider: &'static str,
    body: BodyReader,
    parser: P,
    started: Instant,
) -> BoxStream<'static, Result<LlmEvent, ProviderError>> {
    let state = ReplyState {
        provider,
        body,
        decoder: SseDecoder::default(),
        parser,
        ready: VecDeque::new(),
        finished: false,
        timing: TokenTiming::new(provider, started),
    };
    stream::unfold(state, |mut state| async move {
        let item = state.next_event().await?;
        Some((item, state))
    })
    .boxed()
}

impl<P: ReplyParser> ReplyState<P> {
    async fn next_event(&mut self) -> Option<Result<LlmEvent, ProviderError>> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                if matches!(event, LlmEvent::Token(_) | LlmEvent::ToolCall(_)) {
                    self.timing.record(Instant::now());
                }
                if event == LlmEvent::Done {
                    metrics::count_request(self.provider, Ok(()));
                }
                return Some(Ok(event));
            }
            if self.finished {
                return None;
            }
            if let Err(err) = self.read_more().await {
                self.finished = true;
                self.ready.clear();
                metrics::count_request(self.provider, Err(&err));
                tracing::warn!(provider = self.provider, error = %err, "reply stream failed");
                return Some(Err(err));
            }
        }
    }

    async fn read_more(&mut self) -> Result<(), ProviderError> {
        let Some(chunk) = self.body.next_chunk().await else {
            self.finished = true;
            return self.parser.on_end(&mut self.ready);
        };
        let chunk = chunk?;
        self.decoder
            .push(&chunk)
            .map_err(|err| ProviderError::Protocol {
                provider: self.provider,
                message: err.to_string(),
            })?;
        while let Some(event) = self.decoder.poll_event() {
            if self.parser.on_event(&event, &mut self.ready)? {
                self.finished = true;
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_tracks_first_token_and_longest_gap() {
        let start = Instant::now();
        let mut timing = TokenTiming::new("timing-test", start);
        assert_eq!(timing.first_token(), None);
        timing.record(start + Duration::from_millis(700));
        timing.record(start + Duration::from_millis(800));
        timing.record(start + Duration::from_millis(2_300));
        timing.record(start + Duration::from_millis(2_400));
        assert_eq!(timing.first_token(), Some(Duration::from_millis(700)));
        assert_eq!(timing.longest_gap(), Duration::from_millis(1_500));
    }
}
