//! A Deepgram live streaming server on loopback with a toy recogniser.
//!
//! Test speech is synthetic: each word is 200 ms of one constant sample value
//! (`1000 + 100 * id`, see [`VOCABULARY`]) followed by silence. The server finds the words in
//! the 16 kHz linear16 audio it receives and replies with `Results` messages shaped like
//! Deepgram's: interim results after each word, a final result every three words or after
//! 300 ms of silence (endpointing), a `from_finalize` final on `Finalize`, and `Metadata` then
//! close 1000 on `CloseStream`. Times are seconds of audio received on that connection, as
//! Deepgram counts them. Per connection it can refuse the upgrade, close with a code or reset
//! the TCP connection after some audio, send garbage, and it closes connections that get no
//! audio or KeepAlive for a configurable idle time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Vocabulary of the toy recogniser. A word's id is its index plus one.
pub const VOCABULARY: [&str; 14] = [
    "my", "account", "number", "is", "four", "two", "one", "nine", "zero", "hello", "hold", "on",
    "please", "thanks",
];

const RATE: usize = 16_000;
const WORD_SAMPLES: usize = RATE / 5;
const GAP_SAMPLES: usize = RATE / 10;
const ENDPOINT_SAMPLES: usize = RATE * 3 / 10;

/// Synthesises `words` as the toy recogniser hears them, with 400 ms of silence after.
pub fn speak(words: &str) -> Vec<i16> {
    let mut pcm = Vec::new();
    for word in words.split_whitespace() {
        let id = VOCABULARY
            .iter()
            .position(|w| *w == word)
            .unwrap_or_else(|| panic!("{word} is not in the vocabulary"));
        let value = 1_000 + 100 * (id as i16 + 1);
        pcm.extend(std::iter::repeat_n(value, WORD_SAMPLES));
        pcm.extend(std::iter::repeat_n(0, GAP_SAMPLES));
    }
    pcm.extend(std::iter::repeat_n(0, RATE * 2 / 5));
    pcm
}

/// What one connection does wrong, if anything.
#[derive(Debug, Clone, Default)]
pub struct Fault {
    /// Refuse the upgrade with this HTTP status.
    pub reject: Option<u16>,
    /// Close with this code once this many samples arrived.
    pub close_after: Option<(usize, u16)>,
    /// Reset the TCP connection once this many samples arrived.
    pub reset_after: Option<usize>,
    /// Send a frame that is not JSON right after the upgrade.
    pub garbage: bool,
    /// Send an `Error` message with this description before closing with `close_after`.
    pub error_message: Option<String>,
    /// Wait this long before completing the upgrade.
    pub upgrade_delay: Option<std::time::Duration>,
    /// Accept the TCP connection but never answer the upgrade request.
    pub hang_upgrade: bool,
}

/// What the server saw on one connection.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// Request target with query.
    pub target: String,
    /// Request headers, lowercase names.
    pub headers: Vec<(String, String)>,
    /// Text frames received.
    pub texts: Vec<String>,
    /// Audio samples received.
    pub samples: usize,
    /// How the connection ended, for failure messages.
    pub ended: String,
}

impl Connection {
    /// Returns the value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Counts the text frames equal to `text`.
    pub fn count_text(&self, text: &str) -> usize {
        self.texts.iter().filter(|t| t.as_str() == text).count()
    }
}

#[derive(Default)]
struct Shared {
    faults: Vec<Fault>,
    idle: Option<Duration>,
    connections: Mutex<Vec<Arc<Mutex<Connection>>>>,
}

/// The running server.
#[derive(Clone)]
pub struct MockDeepgram {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl MockDeepgram {
    /// Starts a server; connection `i` gets `faults[i]` (none beyond the list), and sockets
    /// without audio or KeepAlive for `idle` are closed with 1011.
    pub async fn start(faults: Vec<Fault>, idle: Option<Duration>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let shared = Arc::new(Shared {
            faults,
            idle,
            connections: Mutex::new(Vec::new()),
        });
        let accept_shared = shared.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let record = Arc::new(Mutex::new(Connection::default()));
                let index = {
                    let mut connections = accept_shared.connections.lock();
                    connections.push(record.clone());
                    connections.len() - 1
                };
                let fault = accept_shared.faults.get(index).cloned().unwrap_or_default();
                tokio::spawn(serve(stream, fault, accept_shared.idle, record));
            }
        });
        Self { addr, shared }
    }

    /// Returns the `ws://` URL of the listen endpoint.
    pub fn url(&self) -> String {
        format!("ws://{}/v1/listen", self.addr)
    }

    /// Connections so far.
    pub fn connections(&self) -> Vec<Connection> {
        self.shared
            .connections
            .lock()
            .iter()
            .map(|c| c.lock().clone())
            .collect()
    }
}

// The upgrade callback's error type is fixed by tungstenite.
#[allow(clippy::result_large_err)]
async fn serve(
    stream: TcpStream,
    fault: Fault,
    idle: Option<Duration>,
    record: Arc<Mutex<Connection>>,
) {
    if fault.hang_upgrade {
        record.lock().ended = "upgrade never answered".into();
        let mut stream = stream;
        let mut sink = [0u8; 1024];
        while let Ok(n) = tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await {
            if n == 0 {
                break;
            }
        }
        return;
    }
    if let Some(delay) = fault.upgrade_delay {
        tokio::time::sleep(delay).await;
    }
    let callback_record = record.clone();
    let reject = fault.reject;
    let callback = move |request: &Request, response: Response| {
        let mut record = callback_record.lock();
        record.target = request.uri().to_string();
        record.headers = request
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        match reject {
            Some(status) => {
                let body =
                    json!({"err_code": "REFUSED", "err_msg": format!("refused with {status}")});
                let mut error = ErrorResponse::new(Some(body.to_string()));
                *error.status_mut() = status.try_into().expect("status");
                Err(error)
            }
            None => Ok(response),
        }
    };
    let socket = match tokio_tungstenite::accept_hdr_async(stream, callback).await {
        Ok(socket) => socket,
        Err(err) => {
            record.lock().ended = format!("upgrade refused: {err}");
            return;
        }
    };
    let ended = Recogniser::default()
        .run(socket, &fault, idle, &record)
        .await;
    record.lock().ended = ended;
}

#[derive(Default)]
struct Recogniser {
    samples: usize,
    run_start: Option<usize>,
    run_value: i64,
    silence: usize,
    pending: Vec<(usize, usize, usize)>,
    cursor: usize,
    odd_byte: Option<u8>,
}

type Socket = WebSocketStream<TcpStream>;

impl Recogniser {
    async fn run(
        &mut self,
        mut socket: Socket,
        fault: &Fault,
        idle: Option<Duration>,
        record: &Mutex<Connection>,
    ) -> String {
        if fault.garbage {
            let _ = socket.send(Message::text("{\"type\": Results oops")).await;
        }
        loop {
            let next = match idle {
                Some(idle) => match tokio::time::timeout(idle, socket.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        record.lock().ended = "closed idle with 1011".into();
                        close(&mut socket, 1011, "NET-0001: no audio received").await;
                        return "closed idle with 1011".into();
                    }
                },
                None => socket.next().await,
            };
            let message = match next {
                Some(Ok(message)) => message,
                Some(Err(err)) => return format!("read error: {err}"),
                None => return "client went away".into(),
            };
            match message {
                Message::Binary(bytes) => {
                    let replies = self.hear(&bytes);
                    record.lock().samples = self.samples;
                    for reply in replies {
                        if socket.send(Message::text(reply)).await.is_err() {
                            return "send failed".into();
                        }
                    }
                    if let Some((after, code)) = fault.close_after
                        && self.samples >= after
                    {
                        if let Some(description) = &fault.error_message {
                            let error = json!({"type": "Error", "variant": "NET-0000",
                                               "description": description, "message": ""});
                            let _ = socket.send(Message::text(error.to_string())).await;
                        }
                        record.lock().ended = format!("closed with {code}");
                        close(&mut socket, code, "internal server error").await;
                        return format!("closed with {code}");
                    }
                    if fault.reset_after.is_some_and(|after| self.samples >= after) {
                        // Let the client read the results sent so far: a reset discards
                        // unread data at the receiver.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        let tcp = socket.get_ref();
                        let _ = socket2::SockRef::from(tcp).set_linger(Some(Duration::ZERO));
                        return "reset".into();
                    }
                }
                Message::Text(text) => {
                    record.lock().texts.push(text.to_string());
                    let kind = serde_json::from_str::<serde_json::Value>(&text)
                        .ok()
                        .and_then(|v| v["type"].as_str().map(str::to_string))
                        .unwrap_or_default();
                    match kind.as_str() {
                        "Finalize" => {
                            let reply = self.finalize(true, true);
                            let _ = socket.send(Message::text(reply)).await;
                        }
                        "CloseStream" => {
                            if !self.pending.is_empty() {
                                let reply = self.finalize(true, false);
                                let _ = socket.send(Message::text(reply)).await;
                            }
                            let metadata = json!({"type": "Metadata", "request_id": "mock", "duration": self.seconds(self.samples)});
                            let _ = socket.send(Message::text(metadata.to_string())).await;
                            record.lock().ended = "closed after CloseStream".into();
                            close(&mut socket, 1000, "").await;
                            return "closed after CloseStream".into();
                        }
                        _ => {}
                    }
                }
                Message::Close(_) => return "client closed".into(),
                _ => {}
            }
        }
    }

    fn seconds(&self, samples: usize) -> f64 {
        samples as f64 / RATE as f64
    }

    /// Processes audio bytes and returns the messages they cause.
    fn hear(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut data = Vec::with_capacity(bytes.len() + 1);
        data.extend(self.odd_byte.take());
        data.extend_from_slice(bytes);
        if data.len() % 2 == 1 {
            self.odd_byte = data.pop();
        }
        let mut replies = Vec::new();
        for pair in data.chunks_exact(2) {
            let sample = i16::from_le_bytes([pair[0], pair[1]]);
            replies.extend(self.sample(sample));
        }
        replies
    }

    fn sample(&mut self, sample: i16) -> Option<String> {
        let position = self.samples;
        self.samples += 1;
        if sample.abs() > 500 {
            self.silence = 0;
            if self.run_start.is_none() {
                self.run_start = Some(position);
                self.run_value = 0;
            }
            self.run_value += i64::from(sample);
            return None;
        }
        self.silence += 1;
        if let Some(start) = self.run_start.take() {
            let length = (position - start).max(1) as i64;
            let id = ((self.run_value / length - 1_000) as f64 / 100.0).round() as usize;
            self.pending.push((id, start, position));
            if self.pending.len() == 3 {
                return Some(self.finalize(false, false));
            }
            return Some(self.results(false, false, false));
        }
        if self.silence == ENDPOINT_SAMPLES && !self.pending.is_empty() {
            return Some(self.finalize(true, false));
        }
        None
    }

    fn finalize(&mut self, speech_final: bool, from_finalize: bool) -> String {
        let reply = self.results(true, speech_final, from_finalize);
        self.pending.clear();
        self.cursor = self.samples;
        reply
    }

    fn results(&self, is_final: bool, speech_final: bool, from_finalize: bool) -> String {
        let words: Vec<serde_json::Value> = self
            .pending
            .iter()
            .map(|(id, start, end)| {
                let word = id
                    .checked_sub(1)
                    .and_then(|i| VOCABULARY.get(i))
                    .copied()
                    .unwrap_or("unknown");
                json!({"word": word, "start": self.seconds(*start), "end": self.seconds(*end),
                       "confidence": 0.99, "punctuated_word": word})
            })
            .collect();
        let transcript: Vec<&str> = words.iter().filter_map(|w| w["word"].as_str()).collect();
        json!({
            "type": "Results",
            "channel_index": [0, 1],
            "start": self.seconds(self.cursor),
            "duration": self.seconds(self.samples - self.cursor),
            "is_final": is_final,
            "speech_final": speech_final,
            "from_finalize": from_finalize,
            "channel": {"alternatives": [{
                "transcript": transcript.join(" "),
                "confidence": 0.99,
                "words": words,
            }]},
            "metadata": {"request_id": "mock", "model_info": {"name": "mock"}},
        })
        .to_string()
    }
}

async fn close(socket: &mut Socket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.to_string().into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
    // Read until the client replies to the close (RFC 6455 §5.5.1), so that closing the TCP
    // connection with unread audio in it does not reset it and discard results in flight.
    let drain = async {
        while let Some(Ok(message)) = socket.next().await {
            if message.is_close() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
}
