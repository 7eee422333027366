//! RTP port allocation over `[rtp] port_min..=port_max`.
//!
//! Each call gets an even RTP port with the odd port above it reserved for RTCP (RFC 3550
//! §11), even when rtcp-mux ends up negotiated, because the allocation happens before the
//! SDP answer is known. A lease returns its port when dropped, so no error path can leak one.
//! A returned port then rests in quarantine for `[rtp] port_quarantine_secs`: a peer of the
//! previous call may still be sending to it, and the next call on that port (perhaps another
//! tenant's) must not hear that stale media. Ports are handed out round-robin, so a port is
//! reused as late as possible even when the quarantine is short.
//!
//! The allocator only decides which port a call uses; binding the socket is the media
//! layer's job. When a bind fails (another process holds the port), drop the lease and
//! allocate again: the next port in turn comes back.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::config::RtpConfig;
use super::metrics::METRICS;

/// Error allocating a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// Every port pair of the range is in use or in quarantine.
    #[error(
        "no free rtp port in {min}-{max}: {in_use} in use, {quarantined} in quarantine; widen rtp.port_min..rtp.port_max or shorten rtp.port_quarantine_secs"
    )]
    Exhausted {
        /// Lowest port of the range.
        min: u16,
        /// Highest port of the range.
        max: u16,
        /// Pairs held by calls.
        in_use: usize,
        /// Pairs resting after release.
        quarantined: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Free,
    InUse,
    Quarantined,
}

#[derive(Debug)]
struct Pool {
    first_port: u16,
    max_port: u16,
    quarantine: Duration,
    slots: Vec<Slot>,
    cursor: usize,
    in_use: usize,
    /// Released pairs with the time they may be used again, oldest first.
    resting: VecDeque<(usize, Instant)>,
    /// Pairs whose lease was dropped; their quarantine starts at the next call with `now`.
    dropped: Vec<usize>,
}

impl Pool {
    fn port_of(&self, slot: usize) -> u16 {
        self.first_port + 2 * slot as u16
    }

    fn settle(&mut self, now: Instant) {
        for slot in std::mem::take(&mut self.dropped) {
            self.rest(slot, now);
        }
        while let Some(&(slot, until)) = self.resting.front() {
            if until > now {
                break;
            }
            self.resting.pop_front();
            self.slots[slot] = Slot::Free;
        }
    }

    fn rest(&mut self, slot: usize, now: Instant) {
        if self.slots.get(slot) != Some(&Slot::InUse) {
            return;
        }
        self.in_use -= 1;
        if self.quarantine.is_zero() {
            self.slots[slot] = Slot::Free;
            return;
        }
        self.slots[slot] = Slot::Quarantined;
        self.resting.push_back((slot, now + self.quarantine));
    }

    fn take(&mut self) -> Option<usize> {
        let count = self.slots.len();
        for step in 0..count {
            let slot = (self.cursor + step) % count;
            if self.slots[slot] == Slot::Free {
                self.slots[slot] = Slot::InUse;
                self.in_use += 1;
                self.cursor = (slot + 1) % count;
                return Some(slot);
            }
        }
        None
    }
}

/// Hands out RTP ports to calls; cheap to clone and share between media workers.
#[derive(Debug, Clone)]
pub struct PortAllocator {
    pool: Arc<Mutex<Pool>>,
}

impl PortAllocator {
    /// Creates an allocator from the `[rtp]` section.
    pub fn new(config: &RtpConfig) -> Self {
        Self::with_range(
            config.port_min,
            config.port_max,
            Duration::from_secs(config.port_quarantine_secs),
        )
    }

    /// Creates an allocator over the even ports in `min..=max` whose odd neighbour is also in
    /// range. An odd `min` starts at the next even port.
    pub fn with_range(min: u16, max: u16, quarantine: Duration) -> Self {
        let first_port = min.saturating_add(min % 2);
        let pairs = if max > first_port {
            usize::from((max - first_port - 1) / 2 + 1)
        } else {
            0
        };
        PortAllocator {
            pool: Arc::new(Mutex::new(Pool {
                first_port,
                max_port: max,
                quarantine,
                slots: vec![Slot::Free; pairs],
                cursor: 0,
                in_use: 0,
                resting: VecDeque::new(),
                dropped: Vec::new(),
            })),
        }
    }

    /// Allocates the next free even port. Fails when every pair is in use or in quarantine.
    pub fn allocate(&self, now: Instant) -> Result<PortLease, PortError> {
        let mut pool = self.pool.lock();
        pool.settle(now);
        let taken = pool.take();
        METRICS
            .ports_in_use
            .set((pool.in_use - pool.dropped.len()) as i64);
        match taken {
            Some(slot) => Ok(PortLease {
                port: pool.port_of(slot),
                slot,
                pool: Arc::clone(&self.pool),
                released: false,
            }),
            None => Err(PortError::Exhausted {
                min: pool.first_port,
                max: pool.max_port,
                in_use: pool.in_use - pool.dropped.len(),
                quarantined: pool.resting.len() + pool.dropped.len(),
            }),
        }
    }

    /// Port pairs held by calls.
    pub fn in_use(&self) -> usize {
        let pool = self.pool.lock();
        pool.in_use - pool.dropped.len()
    }

    /// Port pairs in quarantine at `now`.
    pub fn quarantined(&self, now: Instant) -> usize {
        let mut pool = self.pool.lock();
        pool.settle(now);
        pool.resting.len()
    }

    /// Port pairs the range holds.
    pub fn capacity(&self) -> usize {
        self.pool.lock().slots.len()
    }
}

/// One call's RTP port (and the RTCP port above it). Dropping it starts the quarantine.
#[derive(Debug)]
pub struct PortLease {
    port: u16,
    slot: usize,
    pool: Arc<Mutex<Pool>>,
    released: bool,
}

impl PortLease {
    /// Returns the even RTP port.
    pub fn rtp_port(&self) -> u16 {
        self.port
    }

    /// Returns the RTCP port for use without rtcp-mux (RTP port + 1).
    pub fn rtcp_port(&self) -> u16 {
        self.port + 1
    }

    /// Returns the port with the quarantine starting at `now`. Dropping the lease does the
    /// same, except that the quarantine then starts at the allocator's next use, which is
    /// never earlier.
    pub fn release(mut self, now: Instant) {
        self.released = true;
        let mut pool = self.pool.lock();
        pool.rest(self.slot, now);
        METRICS
            .ports_in_use
            .set((pool.in_use - pool.dropped.len()) as i64);
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        if !self.released {
            let mut pool = self.pool.lock();
            pool.dropped.push(self.slot);
            METRICS
                .ports_in_use
                .set((pool.in_use - pool.dropped.len()) as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUARANTINE: Duration = Duration::from_secs(10);

    #[test]
    fn ports_are_even_and_round_robin() {
        let allocator = PortAllocator::with_range(30_000, 30_007, QUARANTINE);
        let now = Instant::now();
        let leases: Vec<_> = (0..4).map(|_| allocator.allocate(now).unwrap()).collect();
        let ports: Vec<u16> = leases.iter().map(PortLease::rtp_port).collect();
        assert_eq!(ports, vec![30_000, 30_002, 30_004, 30_006]);
        assert_eq!(leases[3].rtcp_port(), 30_007);
        assert!(allocator.allocate(now).is_err());
    }

    #[test]
    fn odd_bounds_keep_pairs_inside() {
        let allocator = PortAllocator::with_range(30_001, 30_006, QUARANTINE);
        assert_eq!(allocator.capacity(), 2);
        let now = Instant::now();
        assert_eq!(allocator.allocate(now).unwrap().rtp_port(), 30_002);
    }

    #[test]
    fn released_port_rests_in_quarantine() {
        let allocator = PortAllocator::with_range(30_000, 30_003, QUARANTINE);
        let start = Instant::now();
        let first = allocator.allocate(start).unwrap();
        assert_eq!(first.rtp_port(), 30_000);
        first.release(start);
        // 100 ms later a new call must get the other port, not the one just freed.
        let later = start + Duration::from_millis(100);
        let second = allocator.allocate(later).unwrap();
        assert_eq!(second.rtp_port(), 30_002);
        // Both are now taken or resting.
        let err = allocator.allocate(later).unwrap_err();
        assert!(matches!(
            err,
            PortError::Exhausted {
                in_use: 1,
                quarantined: 1,
                ..
            }
        ));
        assert!(err.to_string().contains("rtp.port_quarantine_secs"));
        // After the quarantine the port comes back.
        let third = allocator
            .allocate(start + QUARANTINE + Duration::from_millis(1))
            .unwrap();
        assert_eq!(third.rtp_port(), 30_000);
    }

    #[test]
    fn dropped_lease_is_quarantined() {
        let allocator = PortAllocator::with_range(30_000, 30_001, QUARANTINE);
        let start = Instant::now();
        drop(allocator.allocate(start).unwrap());
        assert_eq!(allocator.in_use(), 0);
        let soon = start + Duration::from_secs(1);
        assert!(allocator.allocate(soon).is_err());
        assert_eq!(allocator.quarantined(soon), 1);
        assert!(allocator.allocate(soon + QUARANTINE).is_ok());
    }

    #[test]
    fn failed_bind_moves_to_next_port() {
        let allocator = PortAllocator::with_range(30_000, 30_009, QUARANTINE);
        let now = Instant::now();
        let lease = allocator.allocate(now).unwrap();
        let busy = lease.rtp_port();
        drop(lease);
        let next = allocator.allocate(now).unwrap();
        assert_ne!(next.rtp_port(), busy);
    }

    #[test]
    fn zero_quarantine_frees_at_once() {
        let allocator = PortAllocator::with_range(30_000, 30_001, Duration::ZERO);
        let now = Instant::now();
        allocator.allocate(now).unwrap().release(now);
        assert!(allocator.allocate(now).is_ok());
    }

    #[test]
    fn no_leak_over_many_calls() {
        let allocator = PortAllocator::with_range(30_000, 30_099, QUARANTINE);
        let start = Instant::now();
        for call in 0..10_000u64 {
            let now = start + Duration::from_millis(300 * call);
            let lease = allocator.allocate(now).unwrap();
            if call % 2 == 0 {
                lease.release(now + Duration::from_millis(250));
            }
        }
        let end = start + Duration::from_secs(3_000) + QUARANTINE * 2;
        assert_eq!(allocator.in_use(), 0);
        // The last lease was dropped, so its quarantine starts now.
        assert_eq!(allocator.quarantined(end), 1);
        let end = end + QUARANTINE;
        assert_eq!(allocator.quarantined(end), 0);
        let all: Vec<_> = (0..50).map(|_| allocator.allocate(end).unwrap()).collect();
        assert_eq!(all.len(), allocator.capacity());
    }

    #[test]
    fn empty_range_reports_exhausted() {
        let allocator = PortAllocator::with_range(30_000, 30_000, QUARANTINE);
        assert_eq!(allocator.capacity(), 0);
        assert!(allocator.allocate(Instant::now()).is_err());
    }
}
