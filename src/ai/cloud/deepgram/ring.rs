//! The recent caller audio of one session, in the wire encoding, addressed by a byte offset
//! counted from the start of the call so that positions survive reconnects.

use std::collections::VecDeque;

/// A bounded buffer of the most recent audio bytes.
#[derive(Debug)]
pub struct AudioRing {
    data: VecDeque<u8>,
    start: u64,
    capacity: usize,
    sample_bytes: usize,
}

impl AudioRing {
    /// Creates a ring holding at most `capacity` bytes of samples `sample_bytes` wide. The
    /// capacity is rounded down to whole samples.
    pub fn new(capacity: usize, sample_bytes: usize) -> Self {
        let sample_bytes = sample_bytes.max(1);
        let capacity = (capacity / sample_bytes).max(1) * sample_bytes;
        Self {
            data: VecDeque::with_capacity(capacity),
            start: 0,
            capacity,
            sample_bytes,
        }
    }

    /// Appends audio, dropping the oldest bytes beyond the capacity.
    pub fn push(&mut self, bytes: &[u8]) {
        self.data.extend(bytes);
        let excess = self.data.len().saturating_sub(self.capacity);
        if excess > 0 {
            self.data.drain(..excess);
            self.start += excess as u64;
        }
    }

    /// Offset of the oldest byte held.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Offset one past the newest byte.
    pub fn end(&self) -> u64 {
        self.start + self.data.len() as u64
    }

    /// Rounds `offset` down to a sample boundary.
    pub fn align(&self, offset: u64) -> u64 {
        offset - offset % self.sample_bytes as u64
    }

    /// Copies the bytes from `offset` (clamped to the held range) to the end, at most `max`.
    pub fn copy_from(&self, offset: u64, max: usize) -> Vec<u8> {
        let from = offset.clamp(self.start, self.end());
        let first = (from - self.start) as usize;
        let last = first.saturating_add(max).min(self.data.len());
        self.data.range(first..last).copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_offsets_across_overflow() {
        let mut ring = AudioRing::new(6, 2);
        ring.push(&[0, 1, 2, 3]);
        ring.push(&[4, 5, 6, 7]);
        assert_eq!(ring.start(), 2);
        assert_eq!(ring.end(), 8);
        assert_eq!(ring.copy_from(4, 100), vec![4, 5, 6, 7]);
    }

    #[test]
    fn copy_clamps_to_held_range() {
        let mut ring = AudioRing::new(4, 1);
        ring.push(&[1, 2, 3, 4, 5, 6]);
        assert_eq!(ring.copy_from(0, 100), vec![3, 4, 5, 6]);
        assert_eq!(ring.copy_from(99, 100), Vec::<u8>::new());
        assert_eq!(ring.copy_from(3, 2), vec![4, 5]);
    }

    #[test]
    fn capacity_is_whole_samples() {
        let mut ring = AudioRing::new(5, 2);
        ring.push(&[0; 10]);
        assert_eq!(ring.end() - ring.start(), 4);
        assert_eq!(ring.align(7), 6);
    }
}
