//! Outbound datagrams of one tick, stored in one reused buffer so that sending costs no
//! allocation per packet.

use std::net::SocketAddr;
use std::ops::Range;

/// Local socket a datagram leaves from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// The RTP socket (also RTCP with rtcp-mux).
    Rtp,
    /// The RTCP socket (RTP port + 1).
    Rtcp,
}

/// One outbound datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit<'a> {
    /// Destination.
    pub destination: SocketAddr,
    /// Local socket to send from.
    pub channel: Channel,
    /// Datagram bytes.
    pub bytes: &'a [u8],
}

/// Datagrams waiting to be sent.
#[derive(Debug, Default)]
pub struct TransmitQueue {
    data: Vec<u8>,
    items: Vec<(Range<usize>, SocketAddr, Channel)>,
}

impl TransmitQueue {
    /// Appends a datagram written by `write` into a scratch area of `max_len` bytes; `write`
    /// returns the length it used, or `None` to cancel.
    pub fn push_with(
        &mut self,
        destination: SocketAddr,
        channel: Channel,
        max_len: usize,
        write: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) {
        let start = self.data.len();
        self.data.resize(start + max_len, 0);
        match write(&mut self.data[start..]) {
            Some(len) if len <= max_len => {
                self.data.truncate(start + len);
                self.items.push((start..start + len, destination, channel));
            }
            _ => self.data.truncate(start),
        }
    }

    /// Datagrams in the order they were queued.
    pub fn iter(&self) -> impl Iterator<Item = Transmit<'_>> {
        self.items
            .iter()
            .map(|(range, destination, channel)| Transmit {
                destination: *destination,
                channel: *channel,
                bytes: &self.data[range.clone()],
            })
    }

    /// Number of queued datagrams.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Forgets the queued datagrams, keeping the buffers.
    pub fn clear(&mut self) {
        self.data.clear();
        self.items.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_keeps_order_and_reuses_buffer() {
        let to: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let mut queue = TransmitQueue::default();
        queue.push_with(to, Channel::Rtp, 100, |out| {
            out[..3].copy_from_slice(b"abc");
            Some(3)
        });
        queue.push_with(to, Channel::Rtcp, 100, |_| None);
        queue.push_with(to, Channel::Rtcp, 100, |out| {
            out[0] = 7;
            Some(1)
        });
        let sent: Vec<_> = queue
            .iter()
            .map(|t| (t.bytes.to_vec(), t.channel))
            .collect();
        assert_eq!(
            sent,
            vec![(b"abc".to_vec(), Channel::Rtp), (vec![7], Channel::Rtcp)]
        );
        let capacity = queue.data.capacity();
        queue.clear();
        assert!(queue.is_empty());
        assert_eq!(queue.data.capacity(), capacity);
    }
}
