//! Non-blocking UDP sockets for RTP and RTCP, read in batches with `recvmmsg(2)` and kernel
//! receive timestamps (`SO_TIMESTAMPNS`).
//!
//! A worker drains each call's socket once per tick rather than waking per packet. The kernel
//! timestamp keeps arrival times exact anyway, so interarrival jitter (RFC 3550 §A.8) is not
//! inflated by the tick.

use std::io;
use std::mem::{MaybeUninit, size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use socket2::{Domain, Protocol, Socket, Type};

/// Datagrams read by one `recvmmsg` call.
pub const BATCH: usize = 16;
/// Largest datagram kept; longer ones are reported as truncated.
pub const MAX_DATAGRAM: usize = 2048;
const CONTROL_LEN: usize = 64;

/// A bound, non-blocking UDP socket with receive timestamps on.
#[derive(Debug)]
pub struct MediaSocket {
    socket: UdpSocket,
}

impl MediaSocket {
    /// Binds `addr` without `SO_REUSEADDR`, so a port another process holds fails cleanly.
    pub fn bind(addr: SocketAddr) -> io::Result<MediaSocket> {
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        let enable: libc::c_int = 1;
        // SAFETY: the option value is a live c_int and its length is passed with it.
        let result = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&enable as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(MediaSocket {
            socket: socket.into(),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Sends one datagram; `WouldBlock` means the socket buffer is full and the packet is
    /// lost, like any other UDP loss.
    pub fn send_to(&self, bytes: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.socket.send_to(bytes, to)
    }

    /// Reads up to [`BATCH`] waiting datagrams into `batch` without blocking; returns how many
    /// were read (0 when none were waiting).
    pub fn recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        batch.count = 0;
        let mut iovecs: [MaybeUninit<libc::iovec>; BATCH] =
            [const { MaybeUninit::uninit() }; BATCH];
        // SAFETY: mmsghdr is plain old data; every pointer in it is set below before use.
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for i in 0..BATCH {
            let iovec = iovecs[i].write(libc::iovec {
                iov_base: batch.buffers[i].as_mut_ptr().cast(),
                iov_len: MAX_DATAGRAM,
            });
            let header = &mut headers[i].msg_hdr;
            header.msg_name = (&mut batch.addresses[i] as *mut libc::sockaddr_storage).cast();
            header.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_iov = iovec;
            header.msg_iovlen = 1;
            header.msg_control = batch.control[i].as_mut_ptr().cast();
            header.msg_controllen = CONTROL_LEN as _;
        }
        // SAFETY: `headers` points at BATCH valid buffers, addresses and control areas that
        // outlive the call; MSG_DONTWAIT keeps it from blocking.
        let received = unsafe {
            libc::recvmmsg(
                self.socket.as_raw_fd(),
                headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if received < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::WouldBlock {
                return Ok(0);
            }
            return Err(error);
        }

        let clock = ClockPair::now();
        let received = received as usize;
        for (i, header) in headers.iter().enumerate().take(received) {
            batch.lengths[i] = header.msg_len as usize;
            batch.truncated[i] = header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            batch.sources[i] = socket_addr(&batch.addresses[i]);
            batch.arrivals[i] = timestamp(&header.msg_hdr)
                .map(|stamp| clock.to_instant(stamp))
                .unwrap_or(clock.instant);
        }
        batch.count = received;
        Ok(received)
    }
}

/// Buffers for one [`MediaSocket::recv_batch`], reused across calls and sockets.
pub struct RecvBatch {
    buffers: Box<[[u8; MAX_DATAGRAM]; BATCH]>,
    addresses: Box<[libc::sockaddr_storage; BATCH]>,
    control: Box<[[u64; CONTROL_LEN / 8]; BATCH]>,
    lengths: [usize; BATCH],
    truncated: [bool; BATCH],
    sources: [Option<SocketAddr>; BATCH],
    arrivals: [Instant; BATCH],
    count: usize,
}

/// One datagram of a batch.
#[derive(Debug)]
pub struct Received<'a> {
    /// Payload bytes (cut at [`MAX_DATAGRAM`] when `truncated`).
    pub bytes: &'a [u8],
    /// The datagram was longer than [`MAX_DATAGRAM`].
    pub truncated: bool,
    /// Sender; `None` for an address family other than IPv4 or IPv6.
    pub source: Option<SocketAddr>,
    /// Kernel receive time.
    pub arrival: Instant,
}

impl RecvBatch {
    /// Allocates buffers for [`BATCH`] datagrams.
    pub fn new() -> Self {
        let now = Instant::now();
        Self {
            buffers: Box::new([[0; MAX_DATAGRAM]; BATCH]),
            // SAFETY: sockaddr_storage is plain old data, valid when zeroed.
            addresses: Box::new(unsafe { zeroed() }),
            control: Box::new([[0; CONTROL_LEN / 8]; BATCH]),
            lengths: [0; BATCH],
            truncated: [false; BATCH],
            sources: [None; BATCH],
            arrivals: [now; BATCH],
            count: 0,
        }
    }

    /// Datagrams read by the last call.
    pub fn iter(&self) -> impl Iterator<Item = Received<'_>> {
        (0..self.count).map(|i| Received {
            bytes: &self.buffers[i][..self.lengths[i].min(MAX_DATAGRAM)],
            truncated: self.truncated[i],
            source: self.sources[i],
            arrival: self.arrivals[i],
        })
    }
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("count", &self.count)
            .finish()
    }
}

/// The monotonic and wall clocks read together, to convert kernel wall-clock stamps.
struct ClockPair {
    instant: Instant,
    system: SystemTime,
}

impl ClockPair {
    fn now() -> Self {
        Self {
            instant: Instant::now(),
            system: SystemTime::now(),
        }
    }

    fn to_instant(&self, stamp: SystemTime) -> Instant {
        match self.system.duration_since(stamp) {
            // A stamp far in the past means the wall clock jumped; use the read time.
            Ok(age) if age < Duration::from_secs(1) => {
                self.instant.checked_sub(age).unwrap_or(self.instant)
            }
            _ => self.instant,
        }
    }
}

fn timestamp(header: &libc::msghdr) -> Option<SystemTime> {
    // SAFETY: the kernel filled msg_control and msg_controllen; the CMSG macros only walk
    // inside that area.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(header);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let spec: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                let since_epoch = Duration::new(spec.tv_sec as u64, spec.tv_nsec as u32);
                return UNIX_EPOCH.checked_add(since_epoch);
            }
            cmsg = libc::CMSG_NXTHDR(header, cmsg);
        }
    }
    None
}

fn socket_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it can contain.
            let addr: libc::sockaddr_in =
                unsafe { std::ptr::read((storage as *const libc::sockaddr_storage).cast()) };
            let ip = Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(addr.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let addr: libc::sockaddr_in6 =
                unsafe { std::ptr::read((storage as *const libc::sockaddr_storage).cast()) };
            let ip = Ipv6Addr::from(addr.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(addr.sin6_port),
                addr.sin6_flowinfo,
                addr.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_reads_datagrams_with_sources() {
        let socket = MediaSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let target = socket.local_addr().unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let before = Instant::now();
        for i in 0..3u8 {
            sender.send_to(&[i; 172], target).unwrap();
        }
        sender.send_to(&[9; 3000], target).unwrap();

        let mut batch = RecvBatch::new();
        let mut seen = Vec::new();
        for _ in 0..100 {
            socket.recv_batch(&mut batch).unwrap();
            seen.extend(
                batch
                    .iter()
                    .map(|r| (r.bytes.to_vec(), r.truncated, r.source, r.arrival)),
            );
            if seen.len() == 4 {
                break;
            }
            std::thread::yield_now();
        }
        assert_eq!(seen.len(), 4);
        for (i, (bytes, truncated, source, arrival)) in seen.iter().take(3).enumerate() {
            assert_eq!(bytes, &vec![i as u8; 172]);
            assert!(!truncated);
            assert_eq!(*source, Some(sender.local_addr().unwrap()));
            assert!(*arrival >= before - Duration::from_millis(5));
        }
        assert!(seen[3].1, "the 3000-byte datagram is truncated");
        assert_eq!(socket.recv_batch(&mut batch).unwrap(), 0);
    }

    #[test]
    fn ipv6_loopback_works() {
        let Ok(socket) = MediaSocket::bind("[::1]:0".parse().unwrap()) else {
            // NOTE: containers without IPv6 loopback cannot run this check.
            return;
        };
        let sender = UdpSocket::bind("[::1]:0").unwrap();
        sender
            .send_to(b"hello", socket.local_addr().unwrap())
            .unwrap();
        let mut batch = RecvBatch::new();
        for _ in 0..100 {
            if socket.recv_batch(&mut batch).unwrap() > 0 {
                break;
            }
            std::thread::yield_now();
        }
        let received: Vec<_> = batch.iter().collect();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].source, Some(sender.local_addr().unwrap()));
    }
}
