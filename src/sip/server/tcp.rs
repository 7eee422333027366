//! TCP connections: accepting, connecting, framing received bytes into messages, and
//! writing. Each connection has a reader task and a writer task; the driver only sees
//! [`TcpInput`] values and writes through per-connection channels.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::sip::endpoint::ConnectionId;
use crate::sip::message::{Frame, FramingError, StreamFramer};

/// Most TCP connections open at once; more are closed as soon as they are accepted.
const MAX_CONNECTIONS: usize = 10_000;
/// How long an outbound connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Report from the TCP tasks to the driver.
#[derive(Debug)]
pub enum TcpInput {
    /// A connection opened (accepted); writes go to `sender`.
    Opened {
        /// Its id.
        connection: ConnectionId,
        /// Remote address.
        peer: SocketAddr,
        /// Writer channel.
        sender: mpsc::UnboundedSender<Bytes>,
    },
    /// One framed message.
    Message {
        /// Connection it came on.
        connection: ConnectionId,
        /// Remote address.
        peer: SocketAddr,
        /// Our address.
        local: SocketAddr,
        /// The message.
        data: Vec<u8>,
    },
    /// A CRLFCRLF keep-alive ping (RFC 5626 §3.5.1).
    Ping(ConnectionId),
    /// The stream cannot be framed; the connection is being closed.
    Broken {
        /// Connection.
        connection: ConnectionId,
        /// Remote address.
        peer: SocketAddr,
        /// Why.
        error: FramingError,
    },
    /// The connection closed.
    Closed(ConnectionId),
}

/// Settings shared by every connection task.
#[derive(Debug, Clone)]
pub struct TcpSettings {
    /// Close a connection after this long without bytes.
    pub idle: Duration,
    /// Largest message.
    pub max_message_size: usize,
}

/// Ids and counters shared by the listener and the driver.
#[derive(Debug, Default)]
pub struct ConnectionCounter {
    next: AtomicU64,
    open: AtomicUsize,
}

impl ConnectionCounter {
    fn next_id(&self) -> ConnectionId {
        ConnectionId(self.next.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

/// Accepts connections until the listener fails or the driver goes away.
pub async fn accept_loop(
    listener: TcpListener,
    settings: TcpSettings,
    counter: Arc<ConnectionCounter>,
    input: mpsc::UnboundedSender<TcpInput>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if counter.open.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            warn!(%peer, "too many SIP TCP connections; closing the new one");
            continue;
        }
        let connection = counter.next_id();
        let (sender, writes) = mpsc::unbounded_channel();
        if input
            .send(TcpInput::Opened {
                connection,
                peer,
                sender,
            })
            .is_err()
        {
            return;
        }
        let _ = stream.set_nodelay(true);
        start_tasks(
            stream,
            connection,
            peer,
            writes,
            settings.clone(),
            counter.clone(),
            input.clone(),
        );
    }
}

/// Opens an outbound connection in the background; writes queue until it is up.
pub fn connect(
    peer: SocketAddr,
    settings: TcpSettings,
    counter: Arc<ConnectionCounter>,
    input: mpsc::UnboundedSender<TcpInput>,
) -> (ConnectionId, mpsc::UnboundedSender<Bytes>) {
    let connection = counter.next_id();
    let (sender, writes) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(peer)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                start_tasks(stream, connection, peer, writes, settings, counter, input);
            }
            Ok(Err(error)) => {
                debug!(%peer, %error, "SIP TCP connect failed");
                let _ = input.send(TcpInput::Closed(connection));
            }
            Err(_) => {
                debug!(%peer, "SIP TCP connect timed out");
                let _ = input.send(TcpInput::Closed(connection));
            }
        }
    });
    (connection, sender)
}

fn start_tasks(
    stream: TcpStream,
    connection: ConnectionId,
    peer: SocketAddr,
    writes: mpsc::UnboundedReceiver<Bytes>,
    settings: TcpSettings,
    counter: Arc<ConnectionCounter>,
    input: mpsc::UnboundedSender<TcpInput>,
) {
    let local = stream.local_addr().unwrap_or(peer);
    let (reader, writer) = stream.into_split();
    counter.open.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(write_loop(writer, writes));
    tokio::spawn(async move {
        read_loop(reader, connection, peer, local, &settings, &input).await;
        counter.open.fetch_sub(1, Ordering::Relaxed);
        let _ = input.send(TcpInput::Closed(connection));
    });
}

async fn read_loop(
    mut reader: OwnedReadHalf,
    connection: ConnectionId,
    peer: SocketAddr,
    local: SocketAddr,
    settings: &TcpSettings,
    input: &mpsc::UnboundedSender<TcpInput>,
) {
    let mut framer = StreamFramer::new(settings.max_message_size);
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match tokio::time::timeout(settings.idle, reader.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(read)) => read,
            Err(_) => {
                debug!(%peer, "closing idle SIP TCP connection");
                return;
            }
        };
        framer.push(&buffer[..read]);
        loop {
            let item = match framer.next_frame() {
                Ok(Some(Frame::Message(data))) => TcpInput::Message {
                    connection,
                    peer,
                    local,
                    data,
                },
                Ok(Some(Frame::Ping)) => TcpInput::Ping(connection),
                Ok(None) => break,
                Err(error) => {
                    let _ = input.send(TcpInput::Broken {
                        connection,
                        peer,
                        error,
                    });
                    return;
                }
            };
            if input.send(item).is_err() {
                return;
            }
        }
    }
}

async fn write_loop(mut writer: OwnedWriteHalf, mut writes: mpsc::UnboundedReceiver<Bytes>) {
    while let Some(data) = writes.recv().await {
        if writer.write_all(&data).await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}

/// The driver's table of open connections.
#[derive(Debug, Default)]
pub struct Connections {
    writers: HashMap<ConnectionId, (SocketAddr, mpsc::UnboundedSender<Bytes>)>,
    by_peer: HashMap<SocketAddr, ConnectionId>,
}

impl Connections {
    /// Registers a connection.
    pub fn insert(
        &mut self,
        connection: ConnectionId,
        peer: SocketAddr,
        sender: mpsc::UnboundedSender<Bytes>,
    ) {
        self.writers.insert(connection, (peer, sender));
        self.by_peer.insert(peer, connection);
    }

    /// Forgets a closed connection.
    pub fn remove(&mut self, connection: ConnectionId) {
        if let Some((peer, _)) = self.writers.remove(&connection)
            && self.by_peer.get(&peer) == Some(&connection)
        {
            self.by_peer.remove(&peer);
        }
    }

    /// Writes to `connection` if it is open, else to any connection to `peer`; false when
    /// neither exists.
    pub fn write(&self, connection: Option<ConnectionId>, peer: SocketAddr, data: Bytes) -> bool {
        let id = connection
            .filter(|c| self.writers.contains_key(c))
            .or_else(|| self.by_peer.get(&peer).copied());
        match id.and_then(|id| self.writers.get(&id)) {
            Some((_, sender)) => sender.send(data).is_ok(),
            None => false,
        }
    }

    /// Writes to one connection; false when it is not open.
    pub fn write_to(&self, connection: ConnectionId, data: Bytes) -> bool {
        match self.writers.get(&connection) {
            Some((_, sender)) => sender.send(data).is_ok(),
            None => false,
        }
    }

    /// Closes a connection after the writes already queued.
    pub fn close(&mut self, connection: ConnectionId) {
        self.remove(connection);
    }

    /// Open connections.
    pub fn open_count(&self) -> usize {
        self.writers.len()
    }
}
