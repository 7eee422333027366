//! A scripted HTTP/1.1 server on loopback. Each request takes the next [`Plan`]: when the
//! headers go out, which body chunks follow and when, and how the response ends (finished,
//! connection reset, hang). It records every request and notices when a client closes a
//! connection while a response is still open.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// How a response ends after its chunks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum End {
    /// Send the last chunk; the connection stays open for the next request.
    Finish,
    /// Reset the TCP connection (RST).
    Reset,
    /// Send nothing more and wait until the client closes.
    Hang,
}

/// One scripted response.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Wait before the status line. `None` sends no response at all.
    pub headers_after: Option<Duration>,
    /// Status code.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body chunks with the wait before each.
    pub chunks: Vec<(Duration, Vec<u8>)>,
    /// How the response ends.
    pub end: End,
}

impl Plan {
    /// Creates a 200 response with `content_type` and the given chunks sent at once.
    pub fn ok(content_type: &str, chunks: Vec<Vec<u8>>) -> Self {
        Self {
            headers_after: Some(Duration::ZERO),
            status: 200,
            headers: vec![("content-type".into(), content_type.into())],
            chunks: chunks.into_iter().map(|c| (Duration::ZERO, c)).collect(),
            end: End::Finish,
        }
    }

    /// Creates an error response with a JSON body.
    pub fn error(status: u16, body: &str) -> Self {
        Self {
            headers_after: Some(Duration::ZERO),
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            chunks: vec![(Duration::ZERO, body.as_bytes().to_vec())],
            end: End::Finish,
        }
    }

    /// Creates a plan that reads the request and sends no response.
    pub fn silent() -> Self {
        Self {
            headers_after: None,
            status: 200,
            headers: Vec::new(),
            chunks: Vec::new(),
            end: End::Hang,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Delays the status line.
    pub fn headers_after(mut self, wait: Duration) -> Self {
        self.headers_after = Some(wait);
        self
    }

    /// Puts `wait` before every chunk after the first.
    pub fn chunk_interval(mut self, wait: Duration) -> Self {
        for chunk in self.chunks.iter_mut().skip(1) {
            chunk.0 = wait;
        }
        self
    }

    /// Sets how the response ends.
    pub fn end(mut self, end: End) -> Self {
        self.end = end;
        self
    }
}

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Method.
    pub method: String,
    /// Path with query.
    pub target: String,
    /// Headers with lowercase names.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Recorded {
    /// Returns the value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Parses the body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

type Responder = Box<dyn Fn(&Recorded) -> Plan + Send + Sync>;

#[derive(Default)]
struct Shared {
    responder: Option<Responder>,
    plans: Mutex<VecDeque<Plan>>,
    requests: Mutex<Vec<Recorded>>,
    closed_while_open: Mutex<u32>,
    notify: Notify,
}

/// The running server; it stops when dropped with the test's runtime.
#[derive(Clone)]
pub struct MockHttp {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl MockHttp {
    /// Starts a server that responds to requests with `plans` in order, repeating the last one.
    pub async fn start(plans: Vec<Plan>) -> Self {
        Self::launch(Shared {
            plans: Mutex::new(plans.into()),
            ..Shared::default()
        })
        .await
    }

    /// Starts a server that answers each request with the plan `responder` picks for it.
    pub async fn start_with(responder: impl Fn(&Recorded) -> Plan + Send + Sync + 'static) -> Self {
        Self::launch(Shared {
            responder: Some(Box::new(responder)),
            ..Shared::default()
        })
        .await
    }

    async fn launch(shared: Shared) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let shared = Arc::new(shared);
        let accept_shared = shared.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, accept_shared.clone()));
            }
        });
        Self { addr, shared }
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().clone()
    }

    /// Waits until a client closed a connection whose response was still open, or `limit`.
    pub async fn wait_client_close(&self, limit: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.shared.notify.notified();
                if *self.shared.closed_while_open.lock() > 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }
}

fn next_plan(shared: &Shared) -> Plan {
    let mut plans = shared.plans.lock();
    if plans.len() > 1 {
        plans.pop_front().expect("plan")
    } else {
        plans.front().cloned().expect("at least one plan")
    }
}

async fn serve(mut stream: TcpStream, shared: Arc<Shared>) {
    let mut buffer = Vec::new();
    loop {
        let Some(request) = read_request(&mut stream, &mut buffer).await else {
            return;
        };
        let plan = match &shared.responder {
            Some(responder) => responder(&request),
            None => next_plan(&shared),
        };
        shared.requests.lock().push(request);
        match respond(&mut stream, &plan).await {
            Ok(true) => continue,
            Ok(false) => return,
            Err(()) => {
                *shared.closed_while_open.lock() += 1;
                shared.notify.notify_waiters();
                return;
            }
        }
    }
}

/// Reads one request; `None` when the client closed the connection.
async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Recorded> {
    loop {
        if let Some(end) = find(buffer, b"\r\n\r\n") {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut parsed = httparse::Request::new(&mut headers);
            parsed.parse(&buffer[..end + 4]).ok()?;
            let headers: Vec<(String, String)> = parsed
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).to_string(),
                    )
                })
                .collect();
            let length: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let method = parsed.method?.to_string();
            let target = parsed.path?.to_string();
            while buffer.len() < end + 4 + length {
                if !read_more(stream, buffer).await {
                    return None;
                }
            }
            let body = buffer[end + 4..end + 4 + length].to_vec();
            buffer.drain(..end + 4 + length);
            return Some(Recorded {
                method,
                target,
                headers,
                body,
            });
        }
        if !read_more(stream, buffer).await {
            return None;
        }
    }
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buffer.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Sends one response. `Ok(true)` keeps the connection, `Ok(false)` ends it, `Err` means the
/// client closed it while the response was open.
async fn respond(stream: &mut TcpStream, plan: &Plan) -> Result<bool, ()> {
    let Some(wait) = plan.headers_after else {
        wait_for_close(stream).await;
        return Err(());
    };
    tokio::time::sleep(wait).await;
    let mut head = format!("HTTP/1.1 {} Mock\r\n", plan.status);
    for (name, value) in &plan.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("transfer-encoding: chunked\r\n\r\n");
    write(stream, head.as_bytes()).await?;
    for (wait, chunk) in &plan.chunks {
        tokio::time::sleep(*wait).await;
        let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
        frame.extend_from_slice(chunk);
        frame.extend_from_slice(b"\r\n");
        write(stream, &frame).await?;
    }
    match plan.end {
        End::Finish => {
            write(stream, b"0\r\n\r\n").await?;
            Ok(true)
        }
        End::Reset => {
            // Give the client time to read what was sent: a reset discards unread data.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = socket2::SockRef::from(&*stream).set_linger(Some(Duration::ZERO));
            Ok(false)
        }
        End::Hang => {
            wait_for_close(stream).await;
            Err(())
        }
    }
}

async fn write(stream: &mut TcpStream, bytes: &[u8]) -> Result<(), ()> {
    stream.write_all(bytes).await.map_err(|_| ())?;
    stream.flush().await.map_err(|_| ())
}

/// Waits until the client closes the connection (read returns end of file or an error).
async fn wait_for_close(stream: &mut TcpStream) {
    let mut chunk = [0u8; 1024];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
