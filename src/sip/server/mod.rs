//! The tokio side of the SIP stack: [`SipServer::start`] binds the listeners and spawns the
//! driver task that owns the sans-IO [`crate::sip::endpoint::Endpoint`]; [`SipHandle`] and
//! the call objects talk to it through channels.

mod calls;
mod command;
mod driver;
mod tcp;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tracing::info;

pub use calls::{ActiveCall, CallControl, IncomingCall, OutgoingCall, OutgoingEvent, ServerCall};
pub use command::SipStats;

use command::Command;
use driver::Driver;
use tcp::{ConnectionCounter, Connections, TcpSettings};

use crate::sip::endpoint::{Endpoint, EndpointConfig, OutgoingInvite, Transport};
use crate::sip::error::SipError;
use crate::sip::{SipConfig, TrunkConfig};

/// Offered calls waiting for the application before new ones get 503.
const INCOMING_QUEUE: usize = 8192;

/// Starts the SIP stack.
pub struct SipServer;

impl SipServer {
    /// Binds the `[sip]` listeners (an empty address disables one), spawns the driver and
    /// returns a handle with the stream of offered calls.
    pub async fn start(
        config: &SipConfig,
        trunks: &[TrunkConfig],
    ) -> Result<(SipHandle, mpsc::Receiver<IncomingCall>), SipError> {
        let mut endpoint = Endpoint::new(EndpointConfig::from_sip(config), trunks, Instant::now());
        let mut local_addrs = Vec::new();

        let udp = match parse_addr("sip.udp", &config.udp)? {
            Some(addr) => {
                let socket = bind_udp(addr)?;
                let local = socket.local_addr().map_err(|source| SipError::Bind {
                    transport: Transport::Udp,
                    addr,
                    source,
                })?;
                local_addrs.push((Transport::Udp, local));
                Some((Arc::new(socket), local))
            }
            None => None,
        };
        let (tcp_input_tx, tcp_input) = mpsc::unbounded_channel();
        let tcp_settings = TcpSettings {
            idle: Duration::from_secs(config.tcp_idle_secs.max(1)),
            max_message_size: config.max_message_size,
        };
        let tcp_counter = Arc::new(ConnectionCounter::default());
        if let Some(addr) = parse_addr("sip.tcp", &config.tcp)? {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| SipError::Bind {
                    transport: Transport::Tcp,
                    addr,
                    source,
                })?;
            let local = listener.local_addr().map_err(|source| SipError::Bind {
                transport: Transport::Tcp,
                addr,
                source,
            })?;
            local_addrs.push((Transport::Tcp, local));
            tokio::spawn(tcp::accept_loop(
                listener,
                tcp_settings.clone(),
                tcp_counter.clone(),
                tcp_input_tx.clone(),
            ));
        }
        for (transport, addr) in &local_addrs {
            endpoint.set_local_addr(*transport, *addr);
            info!(%transport, %addr, "SIP listening");
        }

        let (commands_tx, commands) = mpsc::unbounded_channel();
        let (incoming_tx, incoming) = mpsc::channel(INCOMING_QUEUE);
        let driver = Driver {
            endpoint,
            udp_local: udp.as_ref().map(|(_, local)| *local),
            udp: udp.map(|(socket, _)| socket),
            commands_tx: commands_tx.clone(),
            commands,
            tcp_input,
            tcp_input_tx,
            tcp_settings,
            tcp_counter,
            connections: Connections::default(),
            incoming: incoming_tx,
            slots: HashMap::new(),
            route_cache: HashMap::new(),
            next_refer: 0,
            shutdown: None,
        };
        tokio::spawn(driver.run());
        let handle = SipHandle {
            commands: commands_tx,
            local_addrs: Arc::new(local_addrs),
        };
        Ok((handle, incoming))
    }
}

fn parse_addr(key: &'static str, value: &str) -> Result<Option<SocketAddr>, SipError> {
    if value.is_empty() {
        return Ok(None);
    }
    value.parse().map(Some).map_err(|_| SipError::Config {
        key,
        message: format!("`{value}` is not an address like 0.0.0.0:5060"),
    })
}

/// Binds UDP with a large receive buffer, so bursts survive while the driver is busy.
fn bind_udp(addr: SocketAddr) -> Result<UdpSocket, SipError> {
    let error = |source| SipError::Bind {
        transport: Transport::Udp,
        addr,
        source,
    };
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))
        .map_err(error)?;
    if addr.is_ipv6() {
        // One socket per configured address; `[::]` should not also take IPv4.
        let _ = socket.set_only_v6(false);
    }
    let _ = socket.set_recv_buffer_size(4 << 20);
    let _ = socket.set_send_buffer_size(4 << 20);
    socket.set_nonblocking(true).map_err(error)?;
    socket.bind(&addr.into()).map_err(error)?;
    UdpSocket::from_std(socket.into()).map_err(error)
}

/// A handle to the running SIP stack; cheap to clone.
#[derive(Debug, Clone)]
pub struct SipHandle {
    commands: mpsc::UnboundedSender<Command>,
    local_addrs: Arc<Vec<(Transport, SocketAddr)>>,
}

impl SipHandle {
    /// Returns the bound listener addresses (useful when the config asked for port 0).
    pub fn local_addrs(&self) -> Vec<(Transport, SocketAddr)> {
        self.local_addrs.as_ref().clone()
    }

    /// Returns the bound address of one transport.
    pub fn local_addr(&self, transport: Transport) -> Option<SocketAddr> {
        self.local_addrs
            .iter()
            .find(|(t, _)| *t == transport)
            .map(|(_, addr)| *addr)
    }

    /// Places an outbound call; returns once the INVITE is sent.
    pub async fn invite(&self, request: OutgoingInvite) -> Result<OutgoingCall, SipError> {
        let (reply, result) = oneshot::channel();
        self.commands
            .send(Command::Invite { request, reply })
            .map_err(|_| SipError::Stopped)?;
        let (call, events) = result.await.map_err(|_| SipError::Stopped)??;
        Ok(OutgoingCall {
            call,
            commands: self.commands.clone(),
            events,
        })
    }

    /// Turns draining on or off: new INVITEs get 503 with Retry-After while existing calls
    /// continue.
    pub fn set_draining(&self, draining: bool) {
        let _ = self.commands.send(Command::SetDraining(draining));
    }

    /// Live counts of calls, transactions and connections.
    pub async fn stats(&self) -> Result<SipStats, SipError> {
        let (reply, result) = oneshot::channel();
        self.commands
            .send(Command::Stats(reply))
            .map_err(|_| SipError::Stopped)?;
        result.await.map_err(|_| SipError::Stopped)
    }

    /// Ends every call with BYE (503 for calls not yet answered), waits briefly for the BYE
    /// transactions, and stops the driver.
    pub async fn shutdown(&self) {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::Shutdown(done)).is_ok() {
            let _ = wait.await;
        }
    }
}
