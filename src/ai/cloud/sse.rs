//! Server-sent events decoder (the `text/event-stream` format of the WHATWG HTML Living
//! Standard, section 9.2 "Server-sent events"), fed bytes as they arrive.
//!
//! Lines end in CRLF, LF or CR. A line `field: value` sets a field (one space after the colon is
//! dropped), a line starting with `:` is a comment, and a blank line dispatches the event. The
//! `data` lines of one event are joined with `\n`. An event without any `data` line is not
//! dispatched, and the standard requires an unfinished event at the end of the stream to be
//! discarded.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event` field; empty means the default type `message`.
    pub event: String,
    /// The joined `data` lines.
    pub data: String,
}

/// Error from decoding an event stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// One line or one event grew past the decoder's limit.
    #[error("event larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

/// Incremental decoder: [`SseDecoder::push`] bytes in any chunking, then take events with
/// [`SseDecoder::poll_event`].
#[derive(Debug)]
pub struct SseDecoder {
    line: Vec<u8>,
    event: String,
    data: String,
    has_data: bool,
    after_cr: bool,
    started: bool,
    ready: std::collections::VecDeque<SseEvent>,
    limit: usize,
}

/// Largest line or event accepted by [`SseDecoder::default`]: 1 MiB.
pub const DEFAULT_LIMIT: usize = 1 << 20;

impl Default for SseDecoder {
    fn default() -> Self {
        Self::with_limit(DEFAULT_LIMIT)
    }
}

impl SseDecoder {
    /// Creates a decoder that rejects lines or events longer than `limit` bytes.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            line: Vec::new(),
            event: String::new(),
            data: String::new(),
            has_data: false,
            after_cr: false,
            started: false,
            ready: std::collections::VecDeque::new(),
            limit,
        }
    }

    /// Feeds the next bytes of the stream.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        for &byte in bytes {
            if self.after_cr {
                self.after_cr = false;
                if byte == b'\n' {
                    continue;
                }
            }
            match byte {
                b'\r' => {
                    self.after_cr = true;
                    self.end_line()?;
                }
                b'\n' => self.end_line()?,
                _ => {
                    if self.line.len() >= self.limit {
                        return Err(SseError::TooLarge { limit: self.limit });
                    }
                    self.line.push(byte);
                }
            }
        }
        Ok(())
    }

    /// Takes the next complete event, if any.
    pub fn poll_event(&mut self) -> Option<SseEvent> {
        self.ready.pop_front()
    }

    fn end_line(&mut self) -> Result<(), SseError> {
        let mut line = std::mem::take(&mut self.line);
        if !self.started {
            self.started = true;
            // The standard strips one leading byte order mark.
            if line.starts_with(&[0xEF, 0xBB, 0xBF]) {
                line.drain(..3);
            }
        }
        if line.is_empty() {
            self.dispatch();
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        if text.starts_with(':') {
            return Ok(());
        }
        let (field, value) = match text.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (text.as_ref(), ""),
        };
        match field {
            "event" => self.event = value.to_string(),
            "data" => {
                if self.data.len() + value.len() + 1 > self.limit {
                    return Err(SseError::TooLarge { limit: self.limit });
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            // `id` and `retry` only matter to a reconnecting EventSource, which a single
            // provider request never is.
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self) {
        let event = std::mem::take(&mut self.event);
        if !self.has_data {
            return;
        }
        self.has_data = false;
        self.ready.push_back(SseEvent {
            event,
            data: std::mem::take(&mut self.data),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut decoder = SseDecoder::default();
        let mut out = Vec::new();
        for chunk in chunks {
            decoder.push(chunk).unwrap();
            while let Some(event) = decoder.poll_event() {
                out.push(event);
            }
        }
        out
    }

    fn event(name: &str, data: &str) -> SseEvent {
        SseEvent {
            event: name.into(),
            data: data.into(),
        }
    }

    #[test]
    fn data_lines_join_with_newline() {
        let events = decode(&[b"data: a\ndata: b\n\n"]);
        assert_eq!(events, vec![event("", "a\nb")]);
    }

    #[test]
    fn event_field_names_the_event() {
        let events = decode(&[b"event: ping\ndata: {}\n\n"]);
        assert_eq!(events, vec![event("ping", "{}")]);
    }

    #[test]
    fn all_line_endings_work() {
        let events = decode(&[b"data: 1\r\n\r\ndata: 2\r\rdata: 3\n\n"]);
        assert_eq!(events, vec![event("", "1"), event("", "2"), event("", "3")]);
    }

    #[test]
    fn crlf_split_across_chunks_is_one_line_end() {
        let events = decode(&[b"data: x\r", b"\n", b"\r", b"\ndata: y\n\n"]);
        assert_eq!(events, vec![event("", "x"), event("", "y")]);
    }

    #[test]
    fn byte_by_byte_equals_whole() {
        let text = b"event: a\ndata: hello world\n\n: comment\ndata:no-space\n\n";
        let whole = decode(&[text]);
        let single: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(decode(&single), whole);
        assert_eq!(
            whole,
            vec![event("a", "hello world"), event("", "no-space")]
        );
    }

    #[test]
    fn comments_and_unknown_fields_are_ignored() {
        let events = decode(&[b": keep-alive\nid: 7\nretry: 10\nfoo: bar\ndata: x\n\n"]);
        assert_eq!(events, vec![event("", "x")]);
    }

    #[test]
    fn event_without_data_is_not_dispatched() {
        let events = decode(&[b"event: lonely\n\ndata: y\n\n"]);
        assert_eq!(events, vec![event("", "y")]);
    }

    #[test]
    fn unfinished_event_is_held_back() {
        let events = decode(&[b"data: partial"]);
        assert!(events.is_empty());
    }

    #[test]
    fn leading_bom_is_stripped() {
        let events = decode(&[b"\xEF\xBB\xBFdata: x\n\n"]);
        assert_eq!(events, vec![event("", "x")]);
    }

    #[test]
    fn field_without_colon_has_empty_value() {
        let events = decode(&[b"data\n\n"]);
        assert_eq!(events, vec![event("", "")]);
    }

    #[test]
    fn oversized_line_is_an_error() {
        let mut decoder = SseDecoder::with_limit(8);
        assert_eq!(
            decoder.push(b"data: 0123456789"),
            Err(SseError::TooLarge { limit: 8 })
        );
    }

    #[test]
    fn oversized_event_is_an_error() {
        let mut decoder = SseDecoder::with_limit(12);
        decoder.push(b"data: 12345\n").unwrap();
        decoder.push(b"data: 1234\n").unwrap();
        assert!(decoder.push(b"data: 12\n").is_err());
    }

    #[test]
    fn arbitrary_bytes_do_not_panic() {
        let mut state = 0x1234_5678_u64;
        for _ in 0..2_000 {
            let mut decoder = SseDecoder::with_limit(256);
            for _ in 0..8 {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                let len = (state >> 58) as usize;
                let bytes: Vec<u8> = (0..len)
                    .map(|i| {
                        let byte = (state >> (i % 8 * 8)) as u8;
                        // Bias toward the bytes the grammar cares about.
                        [b'\n', b'\r', b':', b' ', byte][(byte % 5) as usize]
                    })
                    .collect();
                if decoder.push(&bytes).is_err() {
                    break;
                }
                while decoder.poll_event().is_some() {}
            }
        }
    }

    #[test]
    fn invalid_utf8_does_not_panic() {
        let events = decode(&[b"data: \xFF\xFE\n\n"]);
        assert_eq!(events.len(), 1);
    }
}
