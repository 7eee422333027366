//! The driver task: owns the sans-IO endpoint, the UDP socket and the TCP connection table,
//! feeds it received messages, commands and timeouts, and carries out what it returns.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use super::calls::{ActiveCall, CallControl, IncomingCall, OutgoingEvent, ServerCall};
use super::command::{Command, SipStats};
use super::tcp::{self, ConnectionCounter, Connections, TcpInput, TcpSettings};
use crate::sip::endpoint::ConnectionId;
use crate::sip::endpoint::{
    AnswerError, CallEvent, CallRef, Destination, Endpoint, Event, TransferResult, Transmit,
    Transport,
};
use crate::sip::message::{FramingError, Message, Method, parse_message, response_to_rejected};

/// Datagrams read in one go before other work gets a turn.
const UDP_BATCH: usize = 64;
/// Maximum time a shutdown waits for BYE transactions to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

/// Per-call state the driver keeps for the handles.
#[derive(Debug, Default)]
pub(super) struct CallSlot {
    call_id: String,
    cancelled: Option<watch::Sender<bool>>,
    answer: Option<oneshot::Sender<Result<ActiveCall, AnswerError>>>,
    events: Option<mpsc::UnboundedSender<CallEvent>>,
    outgoing: Option<mpsc::UnboundedSender<OutgoingEvent>>,
    refers: HashMap<u64, oneshot::Sender<TransferResult>>,
}

/// The driver's state.
pub struct Driver {
    pub(super) endpoint: Endpoint,
    pub(super) udp: Option<Arc<UdpSocket>>,
    pub(super) udp_local: Option<SocketAddr>,
    pub(super) commands_tx: mpsc::UnboundedSender<Command>,
    pub(super) commands: mpsc::UnboundedReceiver<Command>,
    pub(super) tcp_input: mpsc::UnboundedReceiver<TcpInput>,
    pub(super) tcp_input_tx: mpsc::UnboundedSender<TcpInput>,
    pub(super) tcp_settings: TcpSettings,
    pub(super) tcp_counter: Arc<ConnectionCounter>,
    pub(super) connections: Connections,
    pub(super) incoming: mpsc::Sender<IncomingCall>,
    pub(super) slots: HashMap<CallRef, CallSlot>,
    pub(super) route_cache: HashMap<IpAddr, IpAddr>,
    pub(super) next_refer: u64,
    pub(super) shutdown: Option<(oneshot::Sender<()>, Instant)>,
}

impl Driver {
    /// Runs until shutdown or until every handle is gone.
    pub async fn run(mut self) {
        let mut buffer = vec![0u8; 65_536];
        loop {
            self.flush();
            if self.shutdown_finished() {
                break;
            }
            let grace = self.shutdown.as_ref().map(|(_, until)| *until);
            let deadline = [self.endpoint.poll_timeout(), grace]
                .into_iter()
                .flatten()
                .min();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                    None => std::future::pending().await,
                }
            };
            let udp = self.udp.clone();
            let receive = async {
                match &udp {
                    Some(socket) => socket.recv_from(&mut buffer).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                received = receive => {
                    if let Ok((length, source)) = received {
                        self.on_datagram(source, length, &buffer);
                        self.drain_udp(&mut buffer);
                    }
                },
                Some(input) = self.tcp_input.recv() => self.on_tcp(input),
                () = sleep => self.endpoint.handle_timeout(Instant::now()),
            }
        }
        self.flush();
        if let Some((done, _)) = self.shutdown.take() {
            let _ = done.send(());
        }
        info!("SIP driver stopped");
    }

    fn on_datagram(&mut self, source: SocketAddr, length: usize, buffer: &[u8]) {
        let Some(data) = buffer.get(..length) else {
            return;
        };
        let local = self.local_for(source);
        let from = Destination {
            transport: Transport::Udp,
            addr: source,
            connection: None,
        };
        self.endpoint
            .handle_message(Instant::now(), from, local, data);
    }

    /// Reads datagrams already queued without waiting, then lets other work run.
    fn drain_udp(&mut self, buffer: &mut [u8]) {
        let Some(socket) = self.udp.clone() else {
            return;
        };
        for _ in 0..UDP_BATCH {
            match socket.try_recv_from(buffer) {
                Ok((length, source)) => self.on_datagram(source, length, buffer),
                Err(_) => return,
            }
            self.flush();
        }
    }

    /// Returns the address to write into Via and Contact for a peer: the listening address, or when
    /// listening on an unspecified address, the local address the kernel routes to it from.
    fn local_for(&mut self, source: SocketAddr) -> SocketAddr {
        let Some(local) = self.udp_local else {
            return source;
        };
        if !local.ip().is_unspecified() {
            return local;
        }
        let ip = *self.route_cache.entry(source.ip()).or_insert_with(|| {
            let bind: SocketAddr = if source.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            }
            .parse()
            .unwrap_or(local);
            std::net::UdpSocket::bind(bind)
                .and_then(|s| s.connect(source).and_then(|()| s.local_addr()))
                .map(|a| a.ip())
                .unwrap_or(local.ip())
        });
        SocketAddr::new(ip, local.port())
    }

    fn on_tcp(&mut self, input: TcpInput) {
        let now = Instant::now();
        match input {
            TcpInput::Opened {
                connection,
                peer,
                sender,
            } => self.connections.insert(connection, peer, sender),
            TcpInput::Message {
                connection,
                peer,
                local,
                data,
            } => {
                let from = Destination {
                    transport: Transport::Tcp,
                    addr: peer,
                    connection: Some(connection),
                };
                self.endpoint.handle_message(now, from, local, &data);
            }
            TcpInput::Ping(connection) => {
                // RFC 5626 §3.5.1: answer a CRLFCRLF ping with a CRLF pong.
                self.connections
                    .write_to(connection, Bytes::from_static(b"\r\n"));
            }
            TcpInput::Broken {
                connection,
                peer,
                error,
            } => {
                warn!(%peer, defect = error.defect, "closing SIP TCP connection that cannot be framed");
                self.reject_broken(connection, peer, &error);
                self.connections.close(connection);
                self.endpoint.connection_closed(connection);
            }
            TcpInput::Closed(connection) => {
                self.connections.remove(connection);
                self.endpoint.connection_closed(connection);
            }
        }
    }

    /// Sends 400 or 513 for a message whose framing broke, when its Via allows a reply.
    fn reject_broken(&mut self, connection: ConnectionId, peer: SocketAddr, error: &FramingError) {
        let Some(head) = &error.head else {
            return;
        };
        // The header section alone fails to parse (its Content-Length promises a body), and
        // the failure carries what a response must copy.
        let Err(parse) = parse_message(head, usize::MAX) else {
            return;
        };
        if let Some(info) = parse.reply {
            let builder = response_to_rejected(&info, error.status, error.defect, peer);
            self.connections
                .write_to(connection, Bytes::from(builder.finish_empty()));
        }
    }

    fn flush(&mut self) {
        while let Some(transmit) = self.endpoint.poll_transmit() {
            self.transmit(transmit);
        }
        while let Some(event) = self.endpoint.poll_event() {
            self.on_event(event);
        }
    }

    fn transmit(&mut self, transmit: Transmit) {
        let Transmit { destination, data } = transmit;
        match destination.transport {
            Transport::Udp => {
                let Some(socket) = &self.udp else {
                    return;
                };
                match socket.try_send_to(&data, destination.addr) {
                    Ok(_) => {}
                    Err(error) if error.kind() == ErrorKind::WouldBlock => {
                        let socket = socket.clone();
                        tokio::spawn(async move {
                            let _ = socket.send_to(&data, destination.addr).await;
                        });
                    }
                    Err(error) => {
                        debug!(%error, destination = %destination.addr, "UDP send failed")
                    }
                }
            }
            Transport::Tcp => {
                if !self
                    .connections
                    .write(destination.connection, destination.addr, data.clone())
                {
                    let (connection, sender) = tcp::connect(
                        destination.addr,
                        self.tcp_settings.clone(),
                        self.tcp_counter.clone(),
                        self.tcp_input_tx.clone(),
                    );
                    let _ = sender.send(data);
                    self.connections
                        .insert(connection, destination.addr, sender);
                }
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::IncomingCall(info) => self.offer_call(*info),
            Event::Cancelled(call) => {
                if let Some(mut slot) = self.slots.remove(&call) {
                    if let Some(cancelled) = slot.cancelled.take() {
                        let _ = cancelled.send(true);
                    }
                    if let Some(answer) = slot.answer.take() {
                        let _ = answer.send(Err(AnswerError::Cancelled));
                    }
                }
            }
            Event::Established { call, negotiated } => self.on_established(call, negotiated),
            Event::AnswerFailed { call, error } => {
                if let Some(mut slot) = self.slots.remove(&call) {
                    if let Some(answer) = slot.answer.take() {
                        let _ = answer.send(Err(error));
                    } else if let Some(cancelled) = slot.cancelled.take() {
                        let _ = cancelled.send(true);
                    }
                }
            }
            Event::Progress {
                call,
                status,
                reason,
            } => {
                if let Some(sender) = self.slots.get(&call).and_then(|s| s.outgoing.as_ref()) {
                    let _ = sender.send(OutgoingEvent::Progress { status, reason });
                }
            }
            Event::Failed {
                call,
                status,
                reason,
            } => {
                if let Some(slot) = self.slots.remove(&call)
                    && let Some(sender) = slot.outgoing
                {
                    let _ = sender.send(OutgoingEvent::Failed { status, reason });
                }
            }
            Event::Call { call, event } => {
                let ended = matches!(event, CallEvent::Ended(_));
                if let Some(sender) = self.slots.get(&call).and_then(|s| s.events.as_ref()) {
                    let _ = sender.send(event);
                }
                if ended {
                    self.slots.remove(&call);
                }
            }
            Event::ReferDone {
                call,
                request,
                result,
            } => {
                if let Some(reply) = self
                    .slots
                    .get_mut(&call)
                    .and_then(|s| s.refers.remove(&request))
                {
                    let _ = reply.send(result);
                }
            }
        }
    }

    fn offer_call(&mut self, info: crate::sip::endpoint::IncomingCallInfo) {
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let server = ServerCall {
            call: info.call,
            commands: self.commands_tx.clone(),
            cancelled: cancel_rx,
            settled: false,
        };
        let incoming = IncomingCall {
            call_id: info.call_id.clone(),
            source: info.source,
            transport: info.transport,
            trunk: info.trunk,
            request_uri: info.request_uri,
            to: info.to,
            from: info.from,
            p_called_party_id: info.p_called_party_id,
            diversion: info.diversion,
            offer: info.offer,
            server,
        };
        self.slots.insert(
            info.call,
            CallSlot {
                call_id: info.call_id,
                cancelled: Some(cancel_tx),
                ..CallSlot::default()
            },
        );
        if let Err(error) = self.incoming.try_send(incoming) {
            // The application is not keeping up: answer 503 rather than queue without bound.
            let mut incoming = error.into_inner();
            incoming.server.settled = true;
            self.slots.remove(&info.call);
            let headers = vec![("Retry-After".to_string(), "5".to_string())];
            self.endpoint.reject(
                Instant::now(),
                info.call,
                503,
                "Service Unavailable",
                &headers,
            );
        }
    }

    fn on_established(&mut self, call: CallRef, negotiated: crate::sip::sdp::NegotiatedMedia) {
        let Some(slot) = self.slots.get_mut(&call) else {
            return;
        };
        let (events_tx, events) = mpsc::unbounded_channel();
        slot.events = Some(events_tx);
        slot.cancelled = None;
        let active = ActiveCall {
            call_id: slot.call_id.clone(),
            negotiated,
            events,
            control: CallControl {
                call,
                commands: self.commands_tx.clone(),
            },
        };
        if let Some(answer) = slot.answer.take() {
            let _ = answer.send(Ok(active));
        } else if let Some(outgoing) = &slot.outgoing {
            let _ = outgoing.send(OutgoingEvent::Answered(active));
        }
    }

    fn on_command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::Ring(call) => self.endpoint.ring(now, call),
            Command::Reject {
                call,
                status,
                reason,
                headers,
            } => {
                self.slots.remove(&call);
                self.endpoint.reject(now, call, status, &reason, &headers);
            }
            Command::Answer { call, local, reply } => match self.slots.get_mut(&call) {
                Some(slot) => {
                    slot.answer = Some(reply);
                    self.endpoint.answer(now, call, local);
                }
                None => {
                    let _ = reply.send(Err(AnswerError::Cancelled));
                }
            },
            Command::Hangup { call, reason } => self.endpoint.hangup(now, call, &reason),
            Command::Refer {
                call,
                target,
                reply,
            } => {
                self.next_refer += 1;
                let id = self.next_refer;
                let Some(slot) = self.slots.get_mut(&call) else {
                    let _ = reply.send(TransferResult {
                        status: 481,
                        reason: "Call/Transaction Does Not Exist".into(),
                    });
                    return;
                };
                slot.refers.insert(id, reply);
                self.endpoint.refer(now, call, &target, id);
            }
            Command::Dtmf {
                call,
                digit,
                duration_ms,
            } => self.endpoint.send_dtmf(now, call, digit, duration_ms),
            Command::Invite { request, reply } => {
                let result = self.endpoint.invite(now, request).map(|call| {
                    let (sender, events) = mpsc::unbounded_channel();
                    let call_id = self.send_invite();
                    self.slots.insert(
                        call,
                        CallSlot {
                            call_id,
                            outgoing: Some(sender),
                            ..CallSlot::default()
                        },
                    );
                    (call, events)
                });
                let _ = reply.send(result);
            }
            Command::Cancel(call) => self.endpoint.cancel(now, call),
            Command::SetDraining(draining) => {
                info!(draining, "SIP draining changed");
                self.endpoint.set_draining(draining);
            }
            Command::Stats(reply) => {
                let _ = reply.send(SipStats {
                    calls: self.endpoint.live_calls(),
                    transactions: self.endpoint.live_transactions(),
                    connections: self.connections.open_count(),
                    call_slots: self.slots.len(),
                });
            }
            Command::Shutdown(done) => {
                info!(
                    calls = self.endpoint.live_calls(),
                    "SIP shutdown: ending every call"
                );
                self.endpoint.set_draining(true);
                self.endpoint.hangup_all(now);
                self.shutdown = Some((done, now + SHUTDOWN_GRACE));
            }
        }
    }

    /// Sends the INVITE that `Endpoint::invite` just queued and returns its Call-ID, which the
    /// endpoint chose and the `ActiveCall` of the answered call must carry.
    fn send_invite(&mut self) -> String {
        let mut call_id = String::new();
        while let Some(transmit) = self.endpoint.poll_transmit() {
            if call_id.is_empty()
                && let Ok(Message::Request(request)) = parse_message(&transmit.data, usize::MAX)
                && request.method == Method::Invite
            {
                call_id = request.call_id;
            }
            self.transmit(transmit);
        }
        call_id
    }

    /// Returns a shutdown is done when every transaction our BYEs started has ended, or the grace
    /// period passed.
    fn shutdown_finished(&self) -> bool {
        match &self.shutdown {
            Some((_, until)) => {
                self.endpoint.live_calls() == 0
                    && (self.endpoint.live_client_transactions() == 0 || Instant::now() >= *until)
            }
            None => false,
        }
    }
}
