//! The tokio driver of a Deepgram session: owns the WebSocket, the timers and the channels,
//! and feeds everything to the sans-IO [`Session`].
//!
//! Each connection is split: a writer task sends queued frames while the driver keeps reading,
//! so results the server sends before it closes are read even while a burst of replayed audio
//! is still going out.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures::stream::SplitStream;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use url::Url;

use super::session::{Output, PROVIDER, Session, SessionConfig};
use crate::ai::cloud::http::{error_chain, error_message};
use crate::ai::cloud::key::ApiKey;
use crate::ai::cloud::pcm::{PcmEncoder, WireFormat};
use crate::ai::provider::{ProviderError, SttEvent, SttInput};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Connecting = Pin<Box<dyn Future<Output = Result<Socket, ProviderError>> + Send>>;

/// Maximum wait for the close handshake when dropping a connection.
const CLOSE_WAIT: Duration = Duration::from_millis(500);
/// Frames queued toward one connection. Live audio goes out in 20 ms frames and replays in
/// 100 ms frames, so a full queue means the server stopped reading for seconds.
const SEND_QUEUE: usize = 128;

/// One open connection: frames go to the writer task, messages come from the read half.
struct Connection {
    writer: mpsc::Sender<Message>,
    reader: SplitStream<Socket>,
}

impl Connection {
    fn open(socket: Socket) -> Self {
        let (mut sink, reader) = socket.split();
        let (writer, mut queue) = mpsc::channel::<Message>(SEND_QUEUE);
        tokio::spawn(async move {
            while let Some(message) = queue.recv().await {
                if sink.send(message).await.is_err() {
                    return;
                }
            }
            // The driver dropped the connection: close it politely, but not for long.
            let _ = tokio::time::timeout(CLOSE_WAIT, sink.close()).await;
        });
        Self { writer, reader }
    }
}

/// Everything a session task needs.
#[derive(Debug)]
pub struct DriverParams {
    /// `/v1/listen` URL with the query.
    pub url: Url,
    /// API key.
    pub key: ApiKey,
    /// Wire format of the audio sent.
    pub format: WireFormat,
    /// Core settings.
    pub session: SessionConfig,
    /// Deadline for TCP, TLS and the WebSocket upgrade together.
    pub connect_timeout: Duration,
    /// Call id for logs.
    pub call_id: String,
}

struct Driver {
    params: DriverParams,
    session: Session,
    encoder: Option<PcmEncoder>,
    connection: Option<Connection>,
    connecting: Option<Connecting>,
    events: mpsc::Sender<SttEvent>,
    input_open: bool,
    dropped_partials: u64,
}

/// Runs one session until it finishes.
pub async fn run(
    params: DriverParams,
    mut input: mpsc::Receiver<SttInput>,
    events: mpsc::Sender<SttEvent>,
) {
    let encoder = match PcmEncoder::new(params.format) {
        Ok(encoder) => Some(encoder),
        Err(err) => {
            tracing::warn!(error = %err, "deepgram audio encoder unavailable");
            None
        }
    };
    let session = Session::new(params.session.clone());
    let mut driver = Driver {
        params,
        session,
        encoder,
        connection: None,
        connecting: None,
        events,
        input_open: true,
        dropped_partials: 0,
    };
    tracing::info!(call_id = %driver.params.call_id, "deepgram session started");
    driver.run(&mut input).await;
    tracing::info!(
        call_id = %driver.params.call_id,
        dropped_partials = driver.dropped_partials,
        "deepgram session ended"
    );
}

impl Driver {
    async fn run(&mut self, input: &mut mpsc::Receiver<SttInput>) {
        loop {
            self.perform_outputs().await;
            if self.session.is_finished() {
                break;
            }
            let deadline = self.session.poll_timeout();
            tokio::select! {
                item = input.recv(), if self.input_open => self.handle_input(item),
                result = next_connection(&mut self.connecting) => {
                    self.connecting = None;
                    let now = Instant::now();
                    match result {
                        Ok(socket) => {
                            tracing::debug!(call_id = %self.params.call_id, "deepgram connected");
                            self.connection = Some(Connection::open(socket));
                            self.session.handle_connected(now);
                        }
                        Err(err) => self.session.handle_connect_failed(now, err),
                    }
                }
                message = next_message(&mut self.connection) => self.handle_message(message),
                () = sleep_until(deadline) => self.session.handle_timeout(Instant::now()),
            }
        }
        // Dropping the connection lets its writer task close it.
        self.connection = None;
    }

    fn handle_input(&mut self, item: Option<SttInput>) {
        let now = Instant::now();
        match item {
            Some(SttInput::Audio(pcm)) => {
                let Some(encoder) = self.encoder.as_mut() else {
                    return;
                };
                let mut bytes = Vec::with_capacity(pcm.len() * 2);
                encoder.push(&pcm, &mut bytes);
                self.session.handle_audio(now, &bytes);
            }
            Some(SttInput::Finalize) => self.session.handle_finalize(now),
            Some(SttInput::Pause) => self.session.handle_pause(now),
            Some(SttInput::Resume) => self.session.handle_resume(now),
            None => {
                self.input_open = false;
                self.session.handle_end(now);
            }
        }
    }

    fn handle_message(&mut self, message: Option<Result<Message, WsError>>) {
        let now = Instant::now();
        match message {
            Some(Ok(Message::Text(text))) => self.session.handle_text(now, text.as_str()),
            Some(Ok(Message::Close(frame))) => {
                self.connection = None;
                self.session.handle_closed(now, close_error(frame));
            }
            Some(Ok(Message::Binary(_))) => {
                tracing::debug!("unexpected binary frame from deepgram ignored");
            }
            // Tungstenite replies to pings on the next read or write.
            Some(Ok(_)) => {}
            Some(Err(err)) => {
                self.connection = None;
                self.session.handle_closed(
                    now,
                    ProviderError::Connect {
                        provider: PROVIDER,
                        message: self.params.key.redact(&error_chain(&err)),
                    },
                );
            }
            None => {
                self.connection = None;
                self.session.handle_closed(
                    now,
                    ProviderError::Connect {
                        provider: PROVIDER,
                        message: "connection closed without a close frame".into(),
                    },
                );
            }
        }
    }

    async fn perform_outputs(&mut self) {
        while let Some(output) = self.session.poll_output() {
            match output {
                Output::Connect => {
                    self.connection = None;
                    self.connecting = Some(Box::pin(connect(
                        self.params.url.clone(),
                        self.params.key.clone(),
                        self.params.connect_timeout,
                    )));
                }
                Output::SendAudio(bytes) => self.send(Message::binary(bytes)),
                Output::SendText(text) => self.send(Message::text(text)),
                Output::Event(event) => self.deliver(event).await,
                Output::Disconnect => self.connection = None,
            }
        }
    }

    fn send(&mut self, message: Message) {
        let Some(connection) = self.connection.as_ref() else {
            return;
        };
        let problem = match connection.writer.try_send(message) {
            Ok(()) => return,
            Err(TrySendError::Full(_)) => "the server stopped reading audio",
            Err(TrySendError::Closed(_)) => "sending failed",
        };
        self.connection = None;
        self.session.handle_closed(
            Instant::now(),
            ProviderError::Connect {
                provider: PROVIDER,
                message: problem.into(),
            },
        );
    }

    async fn deliver(&mut self, event: SttEvent) {
        let delivered = if matches!(event, SttEvent::Partial(_)) {
            // Interim text is superseded by the next one, so a full queue may lose it.
            match self.events.try_send(event) {
                Err(TrySendError::Full(_)) => {
                    self.dropped_partials += 1;
                    true
                }
                Err(TrySendError::Closed(_)) => false,
                Ok(()) => true,
            }
        } else {
            self.events.send(event).await.is_ok()
        };
        if !delivered && self.input_open {
            // The conversation loop is gone: close the session as if it ended it.
            self.input_open = false;
            self.session.handle_end(Instant::now());
        }
    }
}

fn close_error(frame: Option<CloseFrame>) -> ProviderError {
    match frame {
        Some(frame) => {
            let code = u16::from(frame.code);
            ProviderError::Rejected {
                provider: PROVIDER,
                status: code,
                message: if frame.reason.is_empty() {
                    "closed by the server".to_string()
                } else {
                    frame.reason.to_string()
                },
            }
        }
        None => ProviderError::Connect {
            provider: PROVIDER,
            message: "closed by the server without a code".into(),
        },
    }
}

async fn next_connection(connecting: &mut Option<Connecting>) -> Result<Socket, ProviderError> {
    match connecting.as_mut() {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

async fn next_message(connection: &mut Option<Connection>) -> Option<Result<Message, WsError>> {
    match connection.as_mut() {
        Some(connection) => connection.reader.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// Opens one connection, mapping a refused upgrade to [`ProviderError::Rejected`] with the
/// HTTP status and Deepgram's error message.
async fn connect(url: Url, key: ApiKey, timeout: Duration) -> Result<Socket, ProviderError> {
    let config_error = |message: String| ProviderError::Config {
        provider: PROVIDER,
        message,
    };
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|err| config_error(format!("invalid URL {url}: {err}")))?;
    let mut authorization = HeaderValue::from_str(&format!("Token {}", key.expose()))
        .map_err(|_| config_error("the API key contains invalid characters".into()))?;
    authorization.set_sensitive(true);
    request.headers_mut().insert("authorization", authorization);
    let connected = tokio::time::timeout(timeout, tokio_tungstenite::connect_async(request)).await;
    match connected {
        Err(_) => Err(ProviderError::Timeout {
            provider: PROVIDER,
            after: timeout,
        }),
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(WsError::Http(response))) => {
            let status = response.status().as_u16();
            let header = response
                .headers()
                .get("dg-error")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = response.body().as_deref().map(error_message);
            let message = body
                .filter(|m| !m.is_empty())
                .or(header)
                .unwrap_or_else(|| "upgrade refused".into());
            Err(ProviderError::Rejected {
                provider: PROVIDER,
                status,
                message: key.redact(&message),
            })
        }
        Ok(Err(err)) => Err(ProviderError::Connect {
            provider: PROVIDER,
            message: key.redact(&error_chain(&err)),
        }),
    }
}
