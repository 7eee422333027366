//! The media engine: worker threads that drive many calls' media sessions over real sockets,
//! and the handles the call layer and the test caller use.
//!
//! ```text
//! call layer (tokio)                 media worker thread (std)
//! MediaEngine::allocate ──bind──▶ MediaPort (RTP + RTCP sockets, port lease)
//! MediaEngine::start_session ──WorkerCommand::Start──▶ SessionCore (built on the worker)
//! MediaSession.playout ──tokio mpsc (try_recv)──▶ playout queue
//! MediaSession.events ◀──tokio mpsc (try_send)── caller frames, speech, barge-in, DTMF
//! MediaSession::update / stop ──WorkerCommand──▶ hold, unhold, address change, end
//! ```
//!
//! Neither side ever blocks on the other: the worker only uses `try_send` and `try_recv`.

pub mod forward;
pub mod socket;
mod worker;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use crate::audio::{MediaEvent, PlayoutCommand};
use crate::media::MediaConfig;
use crate::media::error::MediaError;
use crate::media::session::{MediaStats, SessionConfig, SessionParts, StreamParams};
use crate::rtp::{PortAllocator, PortLease, RtpConfig};
use socket::MediaSocket;
pub use worker::GRID;
use worker::{SessionStart, WorkerCommand};

/// Commands queued per worker before `start_session` and `update` report the engine busy.
const COMMAND_QUEUE: usize = 4_096;
/// Playout commands the AI loop may queue before its `send` waits.
const PLAYOUT_QUEUE: usize = 256;
/// Ports tried per allocation when binding fails because another process uses them.
const BIND_ATTEMPTS: usize = 16;

/// Stats a worker publishes for a session's tokio-side handle.
#[derive(Debug, Default)]
pub struct SessionShared {
    stats: Mutex<MediaStats>,
}

/// One call's RTP socket and RTCP socket (RTP port + 1), bound and reserved. The RTP port goes
/// into the SDP. Dropping it closes the sockets and puts the port pair in quarantine for
/// `rtp.port_quarantine_secs`, so that a new call never receives a previous peer's media.
#[derive(Debug)]
pub struct MediaPort {
    rtp: MediaSocket,
    rtcp: Option<MediaSocket>,
    local: SocketAddr,
    lease: Option<PortLease>,
}

impl Drop for MediaPort {
    fn drop(&mut self) {
        // The quarantine starts now rather than at the allocator's next use.
        if let Some(lease) = self.lease.take() {
            lease.release(Instant::now());
        }
    }
}

impl MediaPort {
    /// Local address of the RTP socket.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Returns the RTP port, for the SDP `m=` line.
    pub fn rtp_port(&self) -> u16 {
        self.local.port()
    }
}

struct WorkerHandle {
    commands: SyncSender<WorkerCommand>,
    sessions: Arc<AtomicUsize>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct EngineInner {
    rtp: Arc<RtpConfig>,
    media: Arc<MediaConfig>,
    ports: PortAllocator,
    workers: Vec<WorkerHandle>,
    next_id: AtomicU64,
    seed: u64,
}

impl Drop for EngineInner {
    fn drop(&mut self) {
        for worker in &self.workers {
            let _ = worker.commands.try_send(WorkerCommand::Shutdown);
        }
        for worker in &self.workers {
            if let Some(thread) = worker.thread.lock().take() {
                let _ = thread.join();
            }
        }
    }
}

/// The media workers of this process. Cheap to clone; the workers stop when the last clone
/// and every session are dropped.
#[derive(Clone)]
pub struct MediaEngine {
    inner: Arc<EngineInner>,
}

impl std::fmt::Debug for MediaEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaEngine")
            .field("workers", &self.inner.workers.len())
            .finish_non_exhaustive()
    }
}

impl MediaEngine {
    /// Starts `media.workers` worker threads (one per CPU core when 0).
    pub fn start(rtp: &RtpConfig, media: &MediaConfig) -> Result<MediaEngine, MediaError> {
        let count = match media.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            count => count,
        };
        let mut workers = Vec::with_capacity(count);
        for index in 0..count {
            let (commands, receiver) = sync_channel(COMMAND_QUEUE);
            let thread = std::thread::Builder::new()
                .name(format!("media-worker-{index}"))
                .spawn(move || worker::run(index, receiver))
                .map_err(MediaError::Spawn)?;
            workers.push(WorkerHandle {
                commands,
                sessions: Arc::new(AtomicUsize::new(0)),
                thread: Mutex::new(Some(thread)),
            });
        }
        tracing::info!(workers = count, ports = %format!("{}-{}", rtp.port_min, rtp.port_max), "media engine started");
        Ok(MediaEngine {
            inner: Arc::new(EngineInner {
                rtp: Arc::new(rtp.clone()),
                media: Arc::new(media.clone()),
                ports: PortAllocator::new(rtp),
                workers,
                next_id: AtomicU64::new(1),
                seed: rand::random(),
            }),
        })
    }

    /// Binds an RTP socket and an RTCP socket (RTP port + 1) on `ip` from the port range.
    /// Ports that fail to bind are skipped.
    pub fn allocate(&self, ip: IpAddr) -> Result<MediaPort, MediaError> {
        let mut failed = Vec::new();
        let mut last_error = None;
        for _ in 0..BIND_ATTEMPTS {
            let lease = self.inner.ports.allocate(Instant::now())?;
            let rtp_addr = SocketAddr::new(ip, lease.rtp_port());
            let rtcp_addr = SocketAddr::new(ip, lease.rtcp_port());
            let bound = MediaSocket::bind(rtp_addr)
                .and_then(|rtp| Ok((rtp, MediaSocket::bind(rtcp_addr)?)));
            match bound {
                Ok((rtp, rtcp)) => {
                    let local = rtp.local_addr().unwrap_or(rtp_addr);
                    return Ok(MediaPort {
                        rtp,
                        rtcp: Some(rtcp),
                        local,
                        lease: Some(lease),
                    });
                }
                Err(error) => {
                    tracing::debug!(port = lease.rtp_port(), %error, "rtp port busy, trying the next");
                    last_error = Some(error);
                    // Keep the lease until the loop ends so the allocator offers another pair.
                    failed.push(lease);
                }
            }
        }
        Err(MediaError::Bind {
            addr: ip,
            source: last_error.unwrap_or_else(|| std::io::Error::other("no port tried")),
        })
    }

    /// Starts the media of one call on the least loaded worker.
    pub fn start_session(
        &self,
        port: MediaPort,
        params: StreamParams,
    ) -> Result<MediaSession, MediaError> {
        let parts = SessionParts::new(&params, &self.inner.media)?;
        let worker = self
            .inner
            .workers
            .iter()
            .min_by_key(|worker| worker.sessions.load(Ordering::Relaxed))
            .ok_or(MediaError::Unavailable("no workers"))?;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (event_sender, events) = mpsc::channel(self.inner.media.event_queue_frames.max(16));
        let (playout, playout_receiver) = mpsc::channel(PLAYOUT_QUEUE);
        let shared = Arc::new(SessionShared::default());
        let local = port.local_addr();
        let start = SessionStart {
            id,
            port,
            params,
            parts,
            config: SessionConfig {
                rtp: Arc::clone(&self.inner.rtp),
                media: Arc::clone(&self.inner.media),
            },
            seed: self.inner.seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            events: event_sender,
            playout: playout_receiver,
            shared: Arc::clone(&shared),
        };
        match worker
            .commands
            .try_send(WorkerCommand::Start(Box::new(start)))
        {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(MediaError::Unavailable("worker queue full")),
            Err(TrySendError::Disconnected(_)) => {
                return Err(MediaError::Unavailable("worker stopped"));
            }
        }
        worker.sessions.fetch_add(1, Ordering::Relaxed);
        Ok(MediaSession {
            events,
            playout,
            id,
            local,
            commands: worker.commands.clone(),
            load: Arc::clone(&worker.sessions),
            shared,
            stopped: false,
            _engine: self.clone(),
        })
    }

    /// Sessions running on all workers.
    pub fn active_sessions(&self) -> usize {
        self.inner
            .workers
            .iter()
            .map(|w| w.sessions.load(Ordering::Relaxed))
            .sum()
    }

    /// Port pairs in quarantine now.
    pub fn quarantined_ports(&self) -> usize {
        self.inner.ports.quarantined(Instant::now())
    }
}

/// The tokio-side handle of one call's media. Dropping it stops the media and frees the port
/// into quarantine.
pub struct MediaSession {
    /// Caller audio frames, speech starts and ends, barge-ins, DTMF and timeouts.
    pub events: mpsc::Receiver<MediaEvent>,
    /// AI audio, DTMF to send, and barge-in acknowledgements.
    pub playout: mpsc::Sender<PlayoutCommand>,
    id: u64,
    local: SocketAddr,
    commands: SyncSender<WorkerCommand>,
    load: Arc<AtomicUsize>,
    shared: Arc<SessionShared>,
    stopped: bool,
    _engine: MediaEngine,
}

impl std::fmt::Debug for MediaSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaSession")
            .field("id", &self.id)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl MediaSession {
    /// Local RTP address of the call.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Applies new stream parameters (hold, unhold, a new address or codec) from the next
    /// tick on.
    pub fn update(&self, params: StreamParams) -> Result<(), MediaError> {
        match self
            .commands
            .try_send(WorkerCommand::Update(self.id, Box::new(params)))
        {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(MediaError::Unavailable("worker queue full")),
            Err(TrySendError::Disconnected(_)) => Err(MediaError::Unavailable("worker stopped")),
        }
    }

    /// Stats as of the worker's last snapshot (about once a second).
    pub fn stats(&self) -> MediaStats {
        self.shared.stats.lock().clone()
    }

    /// Stops the media and returns the final stats.
    pub async fn stop(mut self) -> MediaStats {
        self.stopped = true;
        self.load.fetch_sub(1, Ordering::Relaxed);
        let (reply, final_stats) = oneshot::channel();
        if self
            .commands
            .try_send(WorkerCommand::Stop(self.id, Some(reply)))
            .is_err()
        {
            return self.stats();
        }
        final_stats.await.unwrap_or_else(|_| self.stats())
    }
}

impl Drop for MediaSession {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        self.load.fetch_sub(1, Ordering::Relaxed);
        if let Err(TrySendError::Full(command)) =
            self.commands.try_send(WorkerCommand::Stop(self.id, None))
        {
            // NOTE: blocks until the worker takes a command (at most one 10 ms grid tick unless
            // the worker is stuck), because a session must never be leaked.
            let _ = self.commands.send(command);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocate_skips_ports_in_use() {
        let rtp = RtpConfig {
            port_min: 43_500,
            port_max: 43_509,
            bind_addr: "127.0.0.1".into(),
            ..RtpConfig::default()
        };
        let media = MediaConfig {
            workers: 1,
            ..MediaConfig::default()
        };
        let engine = MediaEngine::start(&rtp, &media).unwrap();
        let loopback = IpAddr::from([127, 0, 0, 1]);
        // Another process holds the first pair's RTCP port.
        let squatter = std::net::UdpSocket::bind("127.0.0.1:43501").unwrap();
        let port = engine.allocate(loopback).unwrap();
        assert_ne!(port.rtp_port(), 43_500);
        assert_eq!(port.rtp_port() % 2, 0);
        drop(squatter);
        drop(port);
        assert!(engine.quarantined_ports() >= 1);
    }
}
