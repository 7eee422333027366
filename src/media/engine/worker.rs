//! A media worker thread: owns many calls' sessions and sockets and services each one on a
//! fixed 10 ms grid.
//!
//! Each session's schedule is anchored on a grid tick, so with 20 ms packets it is serviced on
//! every second tick. A service drains the call's sockets with `recvmmsg`, applies the AI loop's
//! playout commands, runs the sans-IO core up to `now`, sends what it produced and forwards its
//! events. There is no wake-up per packet and no allocation per frame: buffers are reused
//! across sessions and ticks.
//!
//! Sessions are created on this thread, because their VAD instance is not `Send`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::forward::EventForwarder;
use super::socket::{BATCH, MediaSocket, RecvBatch};
use super::{MediaPort, SessionShared};
use crate::audio::PlayoutCommand;
use crate::media::metrics;
use crate::media::session::{
    Channel, MediaStats, SessionConfig, SessionCore, SessionParts, StreamParams,
};

/// Interval of the worker's grid.
pub const GRID: Duration = Duration::from_millis(10);
/// Ticks between stats snapshots published to the tokio side (about one second).
const PUBLISH_EVERY: u32 = 50;
/// A worker that falls further behind than this skips ahead instead of bursting.
const MAX_BACKLOG: Duration = Duration::from_millis(200);

/// Everything a worker needs to start one session.
pub struct SessionStart {
    /// Engine-wide id of the session.
    pub id: u64,
    /// Bound sockets and the port reservation.
    pub port: MediaPort,
    /// Stream parameters.
    pub params: StreamParams,
    /// Codecs and recording built on the tokio side, where errors can still be returned.
    pub parts: SessionParts,
    /// Limits from the engine configuration.
    pub config: SessionConfig,
    /// Seed for the session's SSRC and initial sequence number and timestamp.
    pub seed: u64,
    /// Sending half of the event channel.
    pub events: mpsc::Sender<crate::audio::MediaEvent>,
    /// Receiving half of the playout channel.
    pub playout: mpsc::Receiver<PlayoutCommand>,
    /// Stats shared with the [`super::MediaSession`].
    pub shared: Arc<SessionShared>,
}

/// Messages from the engine to a worker.
pub enum WorkerCommand {
    /// Start a session.
    Start(Box<SessionStart>),
    /// Replace a session's stream parameters.
    Update(u64, Box<StreamParams>),
    /// Stop a session, optionally returning its final stats.
    Stop(u64, Option<oneshot::Sender<MediaStats>>),
    /// End the thread after stopping every session.
    Shutdown,
}

struct Slot {
    core: SessionCore,
    port: MediaPort,
    playout: mpsc::Receiver<PlayoutCommand>,
    events: EventForwarder,
    shared: Arc<SessionShared>,
    due: Instant,
    ticks: u32,
}

/// Runs a worker until [`WorkerCommand::Shutdown`] or until every command sender is gone.
pub fn run(index: usize, commands: Receiver<WorkerCommand>) {
    tracing::info!(worker = index, "media worker started");
    let mut worker = Worker {
        sessions: HashMap::new(),
        batch: RecvBatch::new(),
        next_tick: Instant::now(),
    };
    loop {
        if !worker.wait(&commands) {
            break;
        }
        worker.service_due();
    }
    for (_, slot) in worker.sessions.drain() {
        finish(slot, None);
    }
    tracing::info!(worker = index, "media worker stopped");
}

struct Worker {
    sessions: HashMap<u64, Slot>,
    batch: RecvBatch,
    next_tick: Instant,
}

impl Worker {
    /// Handles commands until the next grid tick; returns false when the worker must end.
    fn wait(&mut self, commands: &Receiver<WorkerCommand>) -> bool {
        loop {
            let now = Instant::now();
            if now >= self.next_tick {
                return true;
            }
            match commands.recv_timeout(self.next_tick - now) {
                Ok(WorkerCommand::Shutdown) | Err(RecvTimeoutError::Disconnected) => return false,
                Ok(command) => self.handle(command),
                Err(RecvTimeoutError::Timeout) => return true,
            }
        }
    }

    fn handle(&mut self, command: WorkerCommand) {
        match command {
            WorkerCommand::Start(start) => self.start(*start),
            WorkerCommand::Update(id, params) => {
                if let Some(slot) = self.sessions.get_mut(&id) {
                    slot.core.update(Instant::now(), *params);
                }
            }
            WorkerCommand::Stop(id, reply) => {
                if let Some(slot) = self.sessions.remove(&id) {
                    finish(slot, reply);
                }
            }
            WorkerCommand::Shutdown => {}
        }
    }

    fn start(&mut self, start: SessionStart) {
        // Anchor the session on the grid tick it will first be serviced at.
        let anchor = self.next_tick;
        let core =
            SessionCore::with_parts(anchor, start.params, start.config, start.parts, start.seed);
        metrics::ACTIVE_SESSIONS.inc();
        tracing::debug!(session = start.id, local = ?start.port.local_addr(), "media session started");
        self.sessions.insert(
            start.id,
            Slot {
                due: core.poll_timeout(),
                core,
                port: start.port,
                playout: start.playout,
                events: EventForwarder::new(start.events),
                shared: start.shared,
                ticks: 0,
            },
        );
    }

    fn service_due(&mut self) {
        let now = Instant::now();
        metrics::TICK_LATENESS.observe(now.saturating_duration_since(self.next_tick).as_secs_f64());
        for slot in self.sessions.values_mut() {
            if slot.due <= now {
                service(slot, &mut self.batch, now);
            }
        }
        self.next_tick += GRID;
        if now.saturating_duration_since(self.next_tick) > MAX_BACKLOG {
            tracing::warn!(behind = ?now - self.next_tick, "media worker fell behind; skipping ahead");
            self.next_tick = now;
        }
    }
}

fn service(slot: &mut Slot, batch: &mut RecvBatch, now: Instant) {
    drain(&slot.port.rtp, Channel::Rtp, &mut slot.core, batch);
    if let Some(rtcp) = &slot.port.rtcp {
        drain(rtcp, Channel::Rtcp, &mut slot.core, batch);
    }
    // A closed channel (the AI loop ended) reads as empty; the call layer stops the session.
    while let Ok(command) = slot.playout.try_recv() {
        slot.core.handle_command(command);
    }

    slot.core.tick(now);
    let mut send_errors = 0;
    // TODO: one sendto per packet and one recvmmsg per call and tick roughly double the
    // session core's CPU per call. Batching across calls needs a shared socket per worker.
    for transmit in slot.core.transmits() {
        let socket = match transmit.channel {
            Channel::Rtp => &slot.port.rtp,
            Channel::Rtcp => slot.port.rtcp.as_ref().unwrap_or(&slot.port.rtp),
        };
        if let Err(error) = socket.send_to(transmit.bytes, transmit.destination) {
            send_errors += 1;
            tracing::trace!(%error, to = %transmit.destination, "send failed");
        }
    }
    slot.core.clear_transmits();
    for _ in 0..send_errors {
        slot.core.note_send_error();
    }
    while let Some(event) = slot.core.poll_event() {
        slot.events.forward(event);
    }
    slot.events.flush();

    slot.ticks += 1;
    if slot.ticks.is_multiple_of(PUBLISH_EVERY) {
        publish(slot);
    }
    slot.due = slot.core.poll_timeout();
}

fn drain(socket: &MediaSocket, channel: Channel, core: &mut SessionCore, batch: &mut RecvBatch) {
    loop {
        let count = match socket.recv_batch(batch) {
            Ok(count) => count,
            Err(error) => {
                // ICMP errors from an earlier send surface here (ECONNREFUSED); they carry no
                // packet and the next read goes on.
                tracing::trace!(%error, "receive failed");
                0
            }
        };
        for received in batch.iter() {
            if received.truncated {
                core.note_oversized();
                continue;
            }
            if let Some(source) = received.source {
                core.handle_datagram(received.arrival, source, received.bytes, channel);
            }
        }
        if count < BATCH {
            return;
        }
    }
}

fn publish(slot: &mut Slot) {
    slot.core.note_audio_dropped(slot.events.dropped_audio());
    slot.core.flush_metrics();
    let stats = slot.core.stats();
    *slot.shared.stats.lock() = stats;
}

fn finish(mut slot: Slot, reply: Option<oneshot::Sender<MediaStats>>) {
    slot.core.goodbye(Instant::now());
    for transmit in slot.core.transmits() {
        let socket = match transmit.channel {
            Channel::Rtp => &slot.port.rtp,
            Channel::Rtcp => slot.port.rtcp.as_ref().unwrap_or(&slot.port.rtp),
        };
        let _ = socket.send_to(transmit.bytes, transmit.destination);
    }
    slot.core.clear_transmits();
    slot.events.flush();
    publish(&mut slot);
    slot.core.finish_metrics();
    metrics::ACTIVE_SESSIONS.dec();
    let stats = slot.shared.stats.lock().clone();
    tracing::debug!(local = ?slot.port.local_addr(), received = stats.received, "media session stopped");
    // Close the sockets and start the port's quarantine before the caller learns that the
    // session has stopped.
    drop(slot);
    if let Some(reply) = reply {
        let _ = reply.send(stats);
    }
}
