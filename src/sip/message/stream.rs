//! Cutting SIP messages out of a byte stream by Content-Length (RFC 3261 §18.3).
//!
//! A TCP segment may carry part of a message or several messages; the framer buffers bytes
//! until a whole message is present. Keep-alive pings (CRLFCRLF, RFC 5626 §3.5.1) are reported
//! so the driver can answer with a CRLF pong.

use memchr::memmem;

use super::parse::parse_length;

/// One unit cut from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A whole message: header section, blank line and exactly Content-Length body bytes.
    Message(Vec<u8>),
    /// A CRLFCRLF keep-alive ping.
    Ping,
}

/// Why the stream cannot be framed any more; the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramingError {
    /// Short description for logs and the 400/513 reason phrase.
    pub defect: &'static str,
    /// Status to send before closing, when `head` allows a response.
    pub status: u16,
    /// The header section of the broken message, if it was complete.
    pub head: Option<Vec<u8>>,
}

/// Buffers stream bytes and yields whole messages.
#[derive(Debug)]
pub struct StreamFramer {
    buffer: Vec<u8>,
    max_size: usize,
    /// Bytes of `buffer` already searched for the end of the header section.
    scanned: usize,
    /// End of the header section of the message being received, once found.
    head_end: Option<usize>,
}

impl StreamFramer {
    /// Creates a framer that rejects messages longer than `max_size` bytes.
    pub fn new(max_size: usize) -> Self {
        StreamFramer {
            buffer: Vec::new(),
            max_size,
            scanned: 0,
            head_end: None,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buffer.extend_from_slice(data);
    }

    /// Bytes buffered and not yet returned.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Returns the next whole frame, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FramingError> {
        if self.buffer.starts_with(b"\r\n\r\n") {
            self.consume(4);
            return Ok(Some(Frame::Ping));
        }
        // A lone CRLF (a pong, or padding before a start line) is skipped (RFC 3261 §7.5).
        while self.buffer.starts_with(b"\r\n") && !self.buffer.starts_with(b"\r\n\r") {
            self.consume(2);
        }
        if self.buffer.is_empty() || self.buffer == b"\r\n\r" || self.buffer == b"\r\n" {
            return Ok(None);
        }

        let Some(head_end) = self.find_head_end() else {
            if self.buffer.len() > self.max_size {
                return Err(self.error("Message Too Large", 513, None));
            }
            return Ok(None);
        };
        let head = &self.buffer[..head_end];

        let length = match content_length(head) {
            Ok(length) => length,
            Err(defect) => return Err(self.error(defect, 400, Some(head_end))),
        };
        let total = head_end.saturating_add(length);
        if total > self.max_size {
            return Err(self.error("Message Too Large", 513, Some(head_end)));
        }
        if self.buffer.len() < total {
            return Ok(None);
        }
        let message = self.buffer[..total].to_vec();
        self.consume(total);
        Ok(Some(Frame::Message(message)))
    }

    fn find_head_end(&mut self) -> Option<usize> {
        if let Some(end) = self.head_end {
            return Some(end);
        }
        let search_from = self.scanned.saturating_sub(3);
        let found = memmem::find(&self.buffer[search_from..], b"\r\n\r\n");
        self.scanned = self.buffer.len();
        self.head_end = found.map(|offset| search_from + offset + 4);
        self.head_end
    }

    fn consume(&mut self, count: usize) {
        self.buffer.drain(..count.min(self.buffer.len()));
        self.scanned = 0;
        self.head_end = None;
    }

    fn error(&self, defect: &'static str, status: u16, head_end: Option<usize>) -> FramingError {
        FramingError {
            defect,
            status,
            head: head_end
                .and_then(|end| self.buffer.get(..end))
                .map(<[u8]>::to_vec),
        }
    }
}

/// Finds the single Content-Length of a header section; a stream message without one has no
/// body.
fn content_length(head: &[u8]) -> Result<usize, &'static str> {
    let mut found = None;
    for line in head.split(|b| *b == b'\n').skip(1) {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        if found.is_some() {
            return Err("Duplicate Content-Length");
        }
        let value =
            std::str::from_utf8(&line[colon + 1..]).map_err(|_| "Invalid Content-Length")?;
        found = Some(parse_length(value).ok_or("Invalid Content-Length")?);
    }
    Ok(found.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &[u8] = b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 5\r\n\r\nhello";

    fn frames(framer: &mut StreamFramer) -> Vec<Frame> {
        let mut out = Vec::new();
        while let Some(frame) = framer.next_frame().unwrap() {
            out.push(frame);
        }
        out
    }

    #[test]
    fn message_split_over_segments() {
        let mut framer = StreamFramer::new(65535);
        for chunk in MESSAGE.chunks(7) {
            assert!(frames(&mut framer).is_empty());
            framer.push(chunk);
        }
        assert_eq!(frames(&mut framer), vec![Frame::Message(MESSAGE.to_vec())]);
        assert_eq!(framer.buffered(), 0);
    }

    #[test]
    fn several_messages_in_one_segment() {
        let mut framer = StreamFramer::new(65535);
        let mut data = MESSAGE.to_vec();
        data.extend_from_slice(b"\r\n\r\n");
        data.extend_from_slice(MESSAGE);
        framer.push(&data);
        assert_eq!(
            frames(&mut framer),
            vec![
                Frame::Message(MESSAGE.to_vec()),
                Frame::Ping,
                Frame::Message(MESSAGE.to_vec())
            ]
        );
    }

    #[test]
    fn missing_length_means_empty_body() {
        let mut framer = StreamFramer::new(65535);
        framer.push(b"OPTIONS sip:a SIP/2.0\r\nl: 0\r\n\r\nOPTIONS sip:b SIP/2.0\r\n\r\n");
        assert_eq!(frames(&mut framer).len(), 2);
    }

    #[test]
    fn duplicate_length_is_fatal_with_head() {
        let mut framer = StreamFramer::new(65535);
        framer.push(b"INVITE sip:a SIP/2.0\r\nContent-Length: 12\r\nContent-Length: 203\r\n\r\n");
        let err = framer.next_frame().unwrap_err();
        assert_eq!(err.defect, "Duplicate Content-Length");
        assert!(err.head.is_some());
    }

    #[test]
    fn size_limits() {
        let mut framer = StreamFramer::new(64);
        framer.push(&[b'a'; 65]);
        assert_eq!(framer.next_frame().unwrap_err().status, 513);
        let mut framer = StreamFramer::new(64);
        framer.push(b"INVITE sip:a SIP/2.0\r\nl: 99999999999999999999\r\n\r\n");
        assert_eq!(
            framer.next_frame().unwrap_err().defect,
            "Invalid Content-Length"
        );
        let mut framer = StreamFramer::new(64);
        framer.push(b"INVITE sip:a SIP/2.0\r\nl: 1000\r\n\r\n");
        assert_eq!(framer.next_frame().unwrap_err().status, 513);
    }

    #[test]
    fn waits_for_body() {
        let mut framer = StreamFramer::new(65535);
        framer.push(&MESSAGE[..MESSAGE.len() - 1]);
        assert_eq!(framer.next_frame().unwrap(), None);
        framer.push(b"o");
        assert!(matches!(
            framer.next_frame().unwrap(),
            Some(Frame::Message(_))
        ));
    }
}
