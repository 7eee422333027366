//! The endpoint: the sans-IO heart of the SIP stack.
//!
//! Contract: the driver feeds every received message to [`Endpoint::handle_message`] and every
//! application command to the command methods, each with the current `now`. After any call it
//! drains [`Endpoint::poll_transmit`] and [`Endpoint::poll_event`], then sleeps until
//! [`Endpoint::poll_timeout`] and calls [`Endpoint::handle_timeout`]. The endpoint never reads
//! a clock and never blocks; all randomness comes from one seeded generator.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tracing::{debug, trace, warn};

use super::call::Call;
use super::config::{ACCEPT, ALLOW, EndpointConfig, SUPPORTED};
use super::dialog::LocalContact;
use super::schedule::{Owner, Schedule, TxId};
use super::types::{CallRef, ConnectionId, Destination, Event, Transmit, Transport};
use crate::sip::TrunkConfig;
use crate::sip::access::{DigestAuth, KeyedLimiter, TrunkTable};
use crate::sip::message::{
    Message, MessageBuilder, Method, ParseError, Request, Response, parse_message, response_to,
    response_to_rejected,
};
use crate::sip::metrics;
use crate::sip::transaction::{
    ClientInviteTx, ClientKey, ClientNonInviteTx, ServerInviteTx, ServerKey, ServerNonInviteTx,
    TimerEvent,
};

/// Most distinct source addresses the per-source rate limit tracks at once.
const MAX_TRACKED_SOURCES: usize = 65_536;

/// Purpose of a client non-INVITE transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// BYE ending the call.
    Bye,
    /// CANCEL of an outbound INVITE.
    Cancel,
    /// REFER with the caller's request id.
    Refer(u64),
    /// INFO carrying DTMF.
    Info,
    /// UPDATE: a session refresh.
    Update,
}

/// A transaction and what it belongs to. The variant names are the RFC 3261 §17 terms.
#[derive(Debug)]
#[allow(clippy::enum_variant_names)]
pub enum Tx {
    /// INVITE server transaction; `call` is set once a call exists for it.
    ServerInvite {
        /// The state machine.
        tx: ServerInviteTx,
        /// Its key.
        key: ServerKey,
        /// Destination of responses.
        destination: Destination,
        /// The call it created or refreshes.
        call: Option<CallRef>,
    },
    /// Non-INVITE server transaction.
    ServerNonInvite {
        /// The state machine.
        tx: ServerNonInviteTx,
        /// Its key.
        key: ServerKey,
    },
    /// INVITE client transaction (outbound call or re-INVITE).
    ClientInvite {
        /// The state machine.
        tx: ClientInviteTx,
        /// Its key.
        key: ClientKey,
        /// Destination of the request.
        destination: Destination,
        /// The call.
        call: CallRef,
        /// Whether this is the initial INVITE of the call.
        initial: bool,
    },
    /// Non-INVITE client transaction.
    ClientNonInvite {
        /// The state machine.
        tx: ClientNonInviteTx,
        /// Its key.
        key: ClientKey,
        /// Destination of the request.
        destination: Destination,
        /// The call it belongs to.
        call: Option<CallRef>,
        /// Purpose of the request.
        purpose: Purpose,
    },
}

/// Everything of the endpoint except the calls, so call handlers can borrow a call and the
/// rest at once.
pub struct Core {
    /// Settings.
    pub config: EndpointConfig,
    /// Seeded randomness for tags, branches and session ids.
    pub rng: StdRng,
    /// Transactions by id.
    pub txs: HashMap<TxId, Tx>,
    /// Server transactions by key.
    pub server_keys: HashMap<ServerKey, TxId>,
    /// Client transactions by key.
    pub client_keys: HashMap<ClientKey, TxId>,
    /// Calls by (Call-ID, our tag).
    pub dialogs: HashMap<(String, String), CallRef>,
    /// Inbound calls by (Call-ID, From tag), to detect merged requests.
    pub inbound: HashMap<(String, String), CallRef>,
    /// Deadlines.
    pub schedule: Schedule,
    /// Messages to send.
    pub transmits: VecDeque<Transmit>,
    /// Events for the driver.
    pub events: VecDeque<Event>,
    /// Trunks and their limits.
    pub trunks: TrunkTable,
    /// Per-source request rate limit.
    pub source_limiter: KeyedLimiter<IpAddr>,
    /// Digest nonces.
    pub digest: DigestAuth,
    /// New INVITEs get 503 while set.
    pub draining: bool,
    /// Our listening address per transport, for outbound requests.
    pub local_addrs: Vec<(Transport, SocketAddr)>,
    next_id: u64,
}

/// The sans-IO SIP endpoint: transactions, dialogs and access control for every call.
pub struct Endpoint {
    /// Calls by handle.
    pub(super) calls: HashMap<CallRef, Call>,
    /// Everything else.
    pub(super) core: Core,
}

impl Endpoint {
    /// Creates an endpoint. `now` is the epoch of digest nonces.
    pub fn new(config: EndpointConfig, trunks: &[TrunkConfig], now: Instant) -> Endpoint {
        let mut rng = if config.seed == 0 {
            StdRng::from_rng(&mut rand::rng())
        } else {
            StdRng::seed_from_u64(config.seed)
        };
        let secret: [u8; 32] = rng.random();
        let core = Core {
            digest: DigestAuth::new(secret, now, config.nonce_lifetime),
            source_limiter: KeyedLimiter::new(now, config.source_rate_per_sec, MAX_TRACKED_SOURCES),
            trunks: TrunkTable::new(now, trunks),
            config,
            rng,
            txs: HashMap::new(),
            server_keys: HashMap::new(),
            client_keys: HashMap::new(),
            dialogs: HashMap::new(),
            inbound: HashMap::new(),
            schedule: Schedule::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            draining: false,
            local_addrs: Vec::new(),
            next_id: 1,
        };
        Endpoint {
            calls: HashMap::new(),
            core,
        }
    }

    /// Records the address a transport listens on; used for requests we originate.
    pub fn set_local_addr(&mut self, transport: Transport, addr: SocketAddr) {
        self.core.local_addrs.retain(|(t, _)| *t != transport);
        self.core.local_addrs.push((transport, addr));
    }

    /// Turns draining on or off: while on, new INVITEs get 503 with Retry-After.
    pub fn set_draining(&mut self, draining: bool) {
        self.core.draining = draining;
    }

    /// Handles one received message: a UDP datagram or one message framed from a stream.
    /// `local` is the address it arrived on.
    pub fn handle_message(
        &mut self,
        now: Instant,
        from: Destination,
        local: SocketAddr,
        data: &[u8],
    ) {
        match parse_message(data, self.core.config.max_message_size) {
            Ok(Message::Request(request)) => {
                metrics::request_received();
                // Requests inside a dialog we hold are never throttled, so a flood from a
                // trunk's address cannot cut its established calls.
                if !self.in_known_dialog(&request)
                    && !self.core.source_limiter.try_take(now, &from.addr.ip())
                {
                    metrics::dropped("source_rate");
                    warn_rate_limited(from.addr);
                    return;
                }
                trace!(method = %request.method, source = %from.addr, "request received");
                self.on_request(now, request, from, local);
            }
            Ok(Message::Response(response)) => {
                metrics::response_received();
                trace!(status = response.status, source = %from.addr, "response received");
                self.on_response(now, response);
            }
            Err(error) => self.on_parse_error(now, error, from),
        }
    }

    fn on_parse_error(&mut self, now: Instant, error: ParseError, from: Destination) {
        static LAST: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
        if log_allowed(&LAST) {
            warn!(source = %from.addr, defect = error.defect, "malformed SIP message");
        }
        let Some(reply) = error.reply else {
            metrics::dropped("malformed");
            debug!(source = %from.addr, defect = error.defect, "dropped malformed message");
            return;
        };
        // Never answer an ACK (RFC 3261 §17.2.1), and send nothing to a source over its rate.
        if reply.method == Some(Method::Ack)
            || !self.core.source_limiter.try_take(now, &from.addr.ip())
        {
            metrics::dropped("malformed");
            return;
        }
        let from = response_destination(&reply.via, from);
        debug!(source = %from.addr, status = error.status, defect = error.defect, "rejected malformed request");
        metrics::rejected(error.status);
        let mut builder = response_to_rejected(&reply, error.status, error.defect, from.addr);
        if error.status == 505 || error.status == 416 {
            builder.header("Allow", ALLOW);
        }
        self.core.decorate_response(&mut builder);
        let data = Bytes::from(builder.finish_empty());
        self.core.send(from, data);
    }

    fn on_request(&mut self, now: Instant, request: Request, from: Destination, local: SocketAddr) {
        let from = response_destination(&request.via, from);
        if self.core.trunks.find(from.addr.ip()).is_none() {
            self.reject_unknown_source(now, &request, from);
            return;
        }
        match request.method {
            Method::Ack => return self.on_ack(now, request, from),
            Method::Cancel => return self.on_cancel(now, request, from),
            _ => {}
        }
        if self.absorb_retransmission(&request, from) {
            return;
        }
        if request.to.tag.is_some() {
            return self.on_in_dialog(now, request, from);
        }
        match request.method {
            Method::Invite => self.on_invite(now, request, from, local),
            Method::Options => self.on_options(now, &request, from),
            Method::Bye
            | Method::Info
            | Method::Update
            | Method::Prack
            | Method::Notify
            | Method::Refer => {
                self.core
                    .reply(now, &request, from, 481, "Call/Transaction Does Not Exist");
            }
            Method::Register | Method::Subscribe | Method::Message | Method::Publish => {
                self.core
                    .reply_allow(now, &request, from, 405, "Method Not Allowed");
            }
            Method::Extension(_) => {
                self.core
                    .reply_allow(now, &request, from, 501, "Not Implemented");
            }
            Method::Ack | Method::Cancel => {}
        }
    }

    fn in_known_dialog(&self, request: &Request) -> bool {
        let Some(tag) = &request.to.tag else {
            return false;
        };
        self.core
            .dialogs
            .contains_key(&(request.call_id.clone(), tag.clone()))
    }

    fn reject_unknown_source(&mut self, now: Instant, request: &Request, from: Destination) {
        warn_unknown_source(from.addr);
        if self.core.config.drop_unknown_sources || request.method == Method::Ack {
            metrics::dropped("unknown_source");
            return;
        }
        self.core.reply(now, request, from, 403, "Forbidden");
    }

    /// Answers a retransmitted request from its server transaction (RFC 3261 §17.2.1,
    /// §17.2.2). Returns true when the request was a retransmission.
    fn absorb_retransmission(&mut self, request: &Request, from: Destination) -> bool {
        let key = ServerKey::of(request);
        let Some(id) = self.core.server_keys.get(&key) else {
            return false;
        };
        let resend = match self.core.txs.get(id) {
            Some(Tx::ServerInvite { tx, .. }) => tx.on_retransmission(),
            Some(Tx::ServerNonInvite { tx, .. }) => tx.on_retransmission(),
            _ => None,
        };
        trace!(method = %request.method, "absorbed retransmitted request");
        if let Some(data) = resend {
            metrics::RETRANSMISSIONS
                .with_label_values(&["response"])
                .inc();
            self.core.send(from, data);
        }
        true
    }

    fn on_options(&mut self, now: Instant, request: &Request, from: Destination) {
        let mut builder = response_to(request, 200, "OK", Some(&self.core.new_tag()), from.addr);
        builder.header("Allow", ALLOW);
        builder.header("Accept", ACCEPT);
        builder.header("Supported", SUPPORTED);
        self.core.decorate_response(&mut builder);
        let data = Bytes::from(builder.finish_empty());
        self.core
            .send_non_invite_response(now, request, from, 200, data);
    }

    /// Handles the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(owner) = self.core.schedule.pop_due(now) {
            match owner {
                Owner::Tx(id) => self.on_tx_timer(now, id),
                Owner::Call(call) => self.on_call_timer(now, call),
            }
        }
    }

    fn on_tx_timer(&mut self, now: Instant, id: TxId) {
        loop {
            let (event, destination) = match self.core.txs.get_mut(&id) {
                Some(Tx::ServerInvite {
                    tx, destination, ..
                }) => (tx.handle_timeout(now), *destination),
                Some(Tx::ServerNonInvite { tx, .. }) => {
                    (tx.handle_timeout(now), dummy_destination())
                }
                Some(Tx::ClientInvite {
                    tx, destination, ..
                }) => (tx.handle_timeout(now), *destination),
                Some(Tx::ClientNonInvite {
                    tx, destination, ..
                }) => (tx.handle_timeout(now), *destination),
                None => return,
            };
            match event {
                Some(TimerEvent::Retransmit(data)) => {
                    metrics::RETRANSMISSIONS
                        .with_label_values(&["transaction"])
                        .inc();
                    self.core.send(destination, data);
                }
                Some(TimerEvent::TimedOut(timer)) => {
                    debug!(?timer, "transaction timed out");
                    self.on_tx_timed_out(now, id);
                    return;
                }
                Some(TimerEvent::Terminated) => {
                    self.core.remove_tx(id);
                    return;
                }
                None => break,
            }
        }
        self.core.reschedule_tx(id);
    }

    fn on_tx_timed_out(&mut self, now: Instant, id: TxId) {
        let Some(tx) = self.core.remove_tx(id) else {
            return;
        };
        match tx {
            Tx::ServerInvite { .. } | Tx::ServerNonInvite { .. } => {}
            Tx::ClientInvite { call, initial, .. } => self.on_invite_timeout(now, call, initial),
            Tx::ClientNonInvite { call, purpose, .. } => {
                if let Some(call) = call {
                    self.on_request_failed(now, call, purpose, 408, "Request Timeout");
                }
            }
        }
    }

    /// Returns the soonest deadline, if any.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.core.schedule.next()
    }

    /// Returns the next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.core.transmits.pop_front()
    }

    /// Returns the next event for the driver.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.core.events.pop_front()
    }

    /// Calls alive (including ones that only wait for their BYE to complete).
    pub fn live_calls(&self) -> usize {
        self.calls.len()
    }

    /// Transactions alive.
    pub fn live_transactions(&self) -> usize {
        self.core.txs.len()
    }

    /// Client transactions alive: requests of ours still waiting for a final response.
    pub fn live_client_transactions(&self) -> usize {
        self.core
            .txs
            .values()
            .filter(|tx| matches!(tx, Tx::ClientInvite { .. } | Tx::ClientNonInvite { .. }))
            .count()
    }

    /// Returns each trunk's name and the calls counted against its `max_calls`.
    pub fn trunk_calls(&self) -> Vec<(String, u32)> {
        self.core.trunks.active_calls()
    }

    /// Returns the handles of calls the application still sees as up.
    pub fn call_refs(&self) -> Vec<CallRef> {
        let mut refs: Vec<_> = self
            .calls
            .values()
            .filter(|c| c.is_live())
            .map(|c| c.id)
            .collect();
        refs.sort();
        refs
    }

    /// Forgets a closed stream connection, so later responses open a new one.
    pub fn connection_closed(&mut self, connection: ConnectionId) {
        for tx in self.core.txs.values_mut() {
            if let Tx::ServerInvite { destination, .. } = tx
                && destination.connection == Some(connection)
            {
                destination.connection = None;
            }
        }
        for call in self.calls.values_mut() {
            if call.dialog.peer.connection == Some(connection) {
                call.dialog.peer.connection = None;
            }
        }
    }
}

/// Where responses to a request go (RFC 3261 §18.2.2, RFC 3581 §4): back over the stream it
/// came on; over UDP to the source address when the top Via asks with `rport`, else to the
/// source IP at the Via's sent-by port.
fn response_destination(via: &crate::sip::message::Via, from: Destination) -> Destination {
    if from.transport.is_reliable() || via.rport.is_some() {
        return from;
    }
    let port = via.port.unwrap_or(5060);
    Destination {
        addr: SocketAddr::new(from.addr.ip(), port),
        ..from
    }
}

fn dummy_destination() -> Destination {
    Destination {
        transport: Transport::Udp,
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        connection: None,
    }
}

fn warn_unknown_source(addr: SocketAddr) {
    static LAST: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
    if log_allowed(&LAST) {
        warn!(source = %addr, "request from a source that matches no trunk");
    }
}

fn warn_rate_limited(addr: SocketAddr) {
    static LAST: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
    if log_allowed(&LAST) {
        warn!(source = %addr, "source is over sip.source_rate_per_sec; dropping its requests");
    }
}

/// Returns true at most once per second per call site, so a flood cannot flood the log.
pub(super) fn log_allowed(last: &std::sync::Mutex<Option<Instant>>) -> bool {
    let Ok(mut last) = last.lock() else {
        return false;
    };
    let now = Instant::now();
    if last.is_some_and(|at| now.duration_since(at) < Duration::from_secs(1)) {
        return false;
    }
    *last = Some(now);
    true
}

impl Core {
    /// Queues a message.
    pub fn send(&mut self, destination: Destination, data: Bytes) {
        self.transmits.push_back(Transmit { destination, data });
    }

    /// Returns a fresh identifier for a call or transaction.
    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Returns a random tag (RFC 3261 §19.3: at least 32 bits of randomness).
    pub fn new_tag(&mut self) -> String {
        format!("{:016x}", self.rng.random::<u64>())
    }

    /// Returns a random branch with the magic cookie (RFC 3261 §8.1.1.7).
    pub fn new_branch(&mut self) -> String {
        format!("z9hG4bK{:016x}", self.rng.random::<u64>())
    }

    /// Returns a random number below 2**31, for initial CSeq values and session ids.
    pub fn random_u31(&mut self) -> u32 {
        self.rng.random::<u32>() >> 1
    }

    /// Returns a random 64-bit value.
    pub fn random_u64(&mut self) -> u64 {
        self.rng.random()
    }

    /// Adds the Server header.
    pub fn decorate_response(&self, builder: &mut MessageBuilder) {
        builder.header_if("Server", &self.config.user_agent);
    }

    /// Our Via and Contact for a message that arrived on `local` over `transport`.
    pub fn local_contact(&self, transport: Transport, local: SocketAddr) -> LocalContact {
        let host_port = if self.config.public_addr.is_empty() {
            local.to_string()
        } else {
            self.config.public_addr.clone()
        };
        LocalContact {
            host_port,
            transport,
        }
    }

    /// Answers a non-INVITE request with a bodiless response in its own transaction.
    pub fn reply(
        &mut self,
        now: Instant,
        request: &Request,
        from: Destination,
        status: u16,
        reason: &str,
    ) {
        if status >= 300 {
            metrics::rejected(status);
        }
        let to_tag = request.to.tag.is_none().then(|| self.new_tag());
        let mut builder = response_to(request, status, reason, to_tag.as_deref(), from.addr);
        self.decorate_response(&mut builder);
        let data = Bytes::from(builder.finish_empty());
        self.send_non_invite_response(now, request, from, status, data);
    }

    /// Like [`Core::reply`] with an Allow header (405, 501).
    pub fn reply_allow(
        &mut self,
        now: Instant,
        request: &Request,
        from: Destination,
        status: u16,
        reason: &str,
    ) {
        metrics::rejected(status);
        let to_tag = request.to.tag.is_none().then(|| self.new_tag());
        let mut builder = response_to(request, status, reason, to_tag.as_deref(), from.addr);
        builder.header("Allow", ALLOW);
        self.decorate_response(&mut builder);
        let data = Bytes::from(builder.finish_empty());
        self.send_non_invite_response(now, request, from, status, data);
    }

    /// Sends a response to a non-INVITE request and keeps it in a server transaction so
    /// retransmissions are answered with the same bytes (RFC 3261 §17.2.2).
    pub fn send_non_invite_response(
        &mut self,
        now: Instant,
        request: &Request,
        from: Destination,
        status: u16,
        data: Bytes,
    ) {
        let key = ServerKey::of(request);
        let mut tx = ServerNonInviteTx::new(self.config.timers, from.transport.is_reliable());
        tx.respond(now, status, data.clone());
        let id = TxId(self.next_id());
        self.txs.insert(
            id,
            Tx::ServerNonInvite {
                tx,
                key: key.clone(),
            },
        );
        self.server_keys.insert(key, id);
        metrics::TRANSACTIONS_ACTIVE.inc();
        self.send(from, data);
        self.reschedule_tx(id);
    }

    /// Starts an INVITE server transaction for `request`.
    pub fn start_server_invite(
        &mut self,
        request: &Request,
        from: Destination,
        call: Option<CallRef>,
    ) -> TxId {
        let key = ServerKey::of(request);
        let tx = ServerInviteTx::new(self.config.timers, from.transport.is_reliable());
        let id = TxId(self.next_id());
        self.txs.insert(
            id,
            Tx::ServerInvite {
                tx,
                key: key.clone(),
                destination: from,
                call,
            },
        );
        self.server_keys.insert(key, id);
        metrics::TRANSACTIONS_ACTIVE.inc();
        id
    }

    /// Sends a response in an INVITE server transaction.
    pub fn respond_invite(&mut self, now: Instant, id: TxId, status: u16, data: Bytes) {
        let Some(Tx::ServerInvite {
            tx, destination, ..
        }) = self.txs.get_mut(&id)
        else {
            return;
        };
        if tx.has_final() {
            return;
        }
        tx.respond(now, status, data.clone());
        let destination = *destination;
        self.send(destination, data);
        self.reschedule_tx(id);
    }

    /// Returns whether the INVITE transaction has sent a final response.
    pub fn invite_has_final(&self, id: TxId) -> bool {
        matches!(self.txs.get(&id), Some(Tx::ServerInvite { tx, .. }) if tx.has_final())
    }

    /// Starts a client transaction for a request built by the caller and sends it.
    #[allow(clippy::too_many_arguments)]
    pub fn start_client_non_invite(
        &mut self,
        now: Instant,
        branch: &str,
        method: Method,
        destination: Destination,
        data: Bytes,
        call: Option<CallRef>,
        purpose: Purpose,
    ) -> TxId {
        let key = ClientKey::new(branch, method);
        let tx = ClientNonInviteTx::new(
            now,
            self.config.timers,
            destination.transport.is_reliable(),
            data.clone(),
        );
        let id = TxId(self.next_id());
        self.txs.insert(
            id,
            Tx::ClientNonInvite {
                tx,
                key: key.clone(),
                destination,
                call,
                purpose,
            },
        );
        self.client_keys.insert(key, id);
        metrics::TRANSACTIONS_ACTIVE.inc();
        self.send(destination, data);
        self.reschedule_tx(id);
        id
    }

    /// Starts an INVITE client transaction and sends the INVITE.
    pub fn start_client_invite(
        &mut self,
        now: Instant,
        branch: &str,
        destination: Destination,
        data: Bytes,
        call: CallRef,
        initial: bool,
    ) -> TxId {
        let key = ClientKey::new(branch, Method::Invite);
        let tx = ClientInviteTx::new(
            now,
            self.config.timers,
            destination.transport.is_reliable(),
            data.clone(),
        );
        let id = TxId(self.next_id());
        self.txs.insert(
            id,
            Tx::ClientInvite {
                tx,
                key: key.clone(),
                destination,
                call,
                initial,
            },
        );
        self.client_keys.insert(key, id);
        metrics::TRANSACTIONS_ACTIVE.inc();
        self.send(destination, data);
        self.reschedule_tx(id);
        id
    }

    /// Puts the transaction's next deadline on the schedule.
    pub fn reschedule_tx(&mut self, id: TxId) {
        let at = match self.txs.get(&id) {
            Some(Tx::ServerInvite { tx, .. }) => tx.poll_timeout(),
            Some(Tx::ServerNonInvite { tx, .. }) => tx.poll_timeout(),
            Some(Tx::ClientInvite { tx, .. }) => tx.poll_timeout(),
            Some(Tx::ClientNonInvite { tx, .. }) => tx.poll_timeout(),
            None => None,
        };
        self.schedule.set(Owner::Tx(id), at.map(|(at, _)| at));
    }

    /// Removes a transaction and its key.
    pub fn remove_tx(&mut self, id: TxId) -> Option<Tx> {
        let tx = self.txs.remove(&id)?;
        match &tx {
            Tx::ServerInvite { key, .. } | Tx::ServerNonInvite { key, .. } => {
                if self.server_keys.get(key) == Some(&id) {
                    self.server_keys.remove(key);
                }
            }
            Tx::ClientInvite { key, .. } | Tx::ClientNonInvite { key, .. } => {
                if self.client_keys.get(key) == Some(&id) {
                    self.client_keys.remove(key);
                }
            }
        }
        self.schedule.set(Owner::Tx(id), None);
        metrics::TRANSACTIONS_ACTIVE.dec();
        Some(tx)
    }

    /// Puts the call's next deadline on the schedule.
    pub fn reschedule_call(&mut self, call: &Call) {
        self.schedule.set(Owner::Call(call.id), call.poll_timeout());
    }

    /// Our local address for `transport`, for requests we originate.
    pub fn local_addr(&self, transport: Transport) -> Option<SocketAddr> {
        self.local_addrs
            .iter()
            .find(|(t, _)| *t == transport)
            .map(|(_, addr)| *addr)
    }

    /// Finds the client transaction a response belongs to.
    pub fn client_tx_for(&self, response: &Response) -> Option<TxId> {
        let key = ClientKey::of_response(response)?;
        self.client_keys.get(&key).copied()
    }
}
