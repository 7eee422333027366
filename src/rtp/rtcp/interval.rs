//! RTCP report timing: the interval computation of RFC 3550 §6.3 and §A.7, with randomisation
//! and timer reconsideration. The minimum is 5 s (halved before the first report), or the
//! reduced minimum of 360 / session bandwidth in kbit/s that §6.2 allows.

use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

/// Fixed minimum interval (RFC 3550 §6.2).
const MIN_INTERVAL: Duration = Duration::from_secs(5);
/// e - 3/2, which compensates for timer reconsideration shortening the mean interval
/// (RFC 3550 §A.7).
const COMPENSATION: f64 = std::f64::consts::E - 1.5;
/// Share of the session bandwidth given to RTCP (RFC 3550 §6.2).
const RTCP_SHARE: f64 = 0.05;
/// Senders' part of the RTCP bandwidth when senders are a quarter or less of the members.
const SENDER_SHARE: f64 = 0.25;
/// IP and UDP header bytes counted into each RTCP packet's size (RFC 3550 §6.2, IPv4).
pub const UDP_IP_OVERHEAD: usize = 28;

/// Minimum interval rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinInterval {
    /// 5 s, halved before the first report.
    Standard,
    /// 360 / session bandwidth in kbit/s, which a two-party call may use.
    Reduced,
}

/// Schedules the RTCP reports of one session.
#[derive(Debug, Clone)]
pub struct RtcpScheduler {
    rtcp_bandwidth: f64,
    min_interval: Duration,
    initial: bool,
    tp: Instant,
    tn: Instant,
    members: u32,
    pmembers: u32,
    senders: u32,
    we_sent: bool,
    avg_rtcp_size: f64,
    rng: SmallRng,
}

impl RtcpScheduler {
    /// Creates the schedule at `now` for a session of `session_bandwidth` bits per second
    /// (media payload plus headers). `seed` feeds the randomisation.
    pub fn new(now: Instant, session_bandwidth: u32, minimum: MinInterval, seed: u64) -> Self {
        let kbps = f64::from(session_bandwidth.max(1_000)) / 1_000.0;
        let min_interval = match minimum {
            MinInterval::Standard => MIN_INTERVAL,
            MinInterval::Reduced => Duration::from_secs_f64(360.0 / kbps).min(MIN_INTERVAL),
        };
        let mut scheduler = RtcpScheduler {
            rtcp_bandwidth: f64::from(session_bandwidth) / 8.0 * RTCP_SHARE,
            min_interval,
            initial: true,
            tp: now,
            tn: now,
            members: 2,
            pmembers: 2,
            senders: 1,
            we_sent: false,
            // A compound of RR + SDES with one block is about 100 bytes with headers.
            avg_rtcp_size: 100.0,
            rng: SmallRng::seed_from_u64(seed),
        };
        scheduler.tn = now + scheduler.interval();
        scheduler
    }

    /// Updates the member and sender counts (ourselves included) and whether we sent RTP
    /// since the last two reports.
    pub fn set_members(&mut self, members: u32, senders: u32, we_sent: bool) {
        self.members = members.max(1);
        self.senders = senders.min(self.members);
        self.we_sent = we_sent;
    }

    /// When the next report is due (the timer `tn`).
    pub fn poll_timeout(&self) -> Instant {
        self.tn
    }

    /// Runs the timer at `now` (RFC 3550 §A.7 `OnExpire`). Returns true when a report should
    /// be sent now; then call [`RtcpScheduler::on_sent`] with its size.
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        if now < self.tn {
            return false;
        }
        let interval = self.interval();
        let reconsidered = self.tp + interval;
        if reconsidered > now {
            // Timer reconsideration: the group grew or the average size changed, so wait.
            self.tn = reconsidered;
            return false;
        }
        true
    }

    /// Records a report of `size` bytes (RTCP only) sent at `now` and schedules the next.
    pub fn on_sent(&mut self, now: Instant, size: usize) {
        self.update_average(size);
        self.tp = now;
        self.initial = false;
        self.tn = now + self.interval();
        self.pmembers = self.members;
    }

    /// Records a received RTCP compound of `size` bytes.
    pub fn on_received(&mut self, size: usize) {
        self.update_average(size);
    }

    /// Average compound size including IP and UDP headers, in bytes.
    pub fn average_size(&self) -> f64 {
        self.avg_rtcp_size
    }

    fn update_average(&mut self, size: usize) {
        // RFC 3550 §6.3.3: avg_rtcp_size = 1/16 * packet_size + 15/16 * avg_rtcp_size.
        let size = (size + UDP_IP_OVERHEAD) as f64;
        self.avg_rtcp_size = size / 16.0 + self.avg_rtcp_size * 15.0 / 16.0;
    }

    /// Computes a randomised interval (RFC 3550 §A.7 `rtcp_interval`).
    fn interval(&mut self) -> Duration {
        let mut minimum = self.min_interval.as_secs_f64();
        if self.initial && self.min_interval == MIN_INTERVAL {
            minimum /= 2.0;
        }

        let mut bandwidth = self.rtcp_bandwidth.max(1.0);
        let mut n = f64::from(self.members);
        let senders = f64::from(self.senders);
        if senders <= n * SENDER_SHARE {
            if self.we_sent {
                bandwidth *= SENDER_SHARE;
                n = senders;
            } else {
                bandwidth *= 1.0 - SENDER_SHARE;
                n -= senders;
            }
        }

        let deterministic = (self.avg_rtcp_size * n / bandwidth).max(minimum);
        let factor = self.rng.random_range(0.5..1.5);
        Duration::from_secs_f64(deterministic * factor / COMPENSATION)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// G.711 with RTP, UDP and IPv4 headers: 80 kbit/s.
    const G711_BANDWIDTH: u32 = 80_000;

    fn intervals(minimum: MinInterval, count: usize) -> Vec<f64> {
        let start = Instant::now();
        let mut scheduler = RtcpScheduler::new(start, G711_BANDWIDTH, minimum, 42);
        let mut now = start;
        let mut last = start;
        let mut out = Vec::new();
        while out.len() < count {
            now = scheduler.poll_timeout().max(now);
            if scheduler.handle_timeout(now) {
                out.push((now - last).as_secs_f64());
                last = now;
                scheduler.on_sent(now, 72);
            }
        }
        out
    }

    #[test]
    fn first_report_uses_half_minimum() {
        let first = intervals(MinInterval::Standard, 1)[0];
        // 2.5 s times [0.5, 1.5) divided by e - 3/2.
        assert!((1.02..3.08).contains(&first), "{first}");
    }

    #[test]
    fn standard_intervals_randomise_around_minimum() {
        let all = intervals(MinInterval::Standard, 201);
        let later = &all[1..];
        for &t in later {
            assert!((2.05..6.16).contains(&t), "{t}");
        }
        let mean = later.iter().sum::<f64>() / later.len() as f64;
        // Reconsideration redraws the interval until it has passed, which the e - 3/2
        // compensation offsets, so the mean lands at the 5 s minimum.
        assert!((4.6..5.5).contains(&mean), "{mean}");
        let spread =
            later.iter().cloned().fold(0.0, f64::max) - later.iter().cloned().fold(10.0, f64::min);
        assert!(spread > 2.0, "{spread}");
    }

    #[test]
    fn reduced_minimum_for_two_parties() {
        let all = intervals(MinInterval::Reduced, 50);
        // 360 / 80 kbit/s = 4.5 s, randomised and compensated.
        for &t in &all {
            assert!((1.84..5.55).contains(&t), "{t}");
        }
    }

    #[test]
    fn same_seed_same_schedule() {
        assert_eq!(
            intervals(MinInterval::Standard, 10),
            intervals(MinInterval::Standard, 10)
        );
    }

    #[test]
    fn more_members_lengthen_interval() {
        let start = Instant::now();
        let mut scheduler = RtcpScheduler::new(start, 8_000, MinInterval::Standard, 1);
        scheduler.on_sent(start, 200);
        scheduler.set_members(200, 1, false);
        let tn = scheduler.poll_timeout();
        // The old tn was computed for two members; reconsideration pushes it out.
        let fired = scheduler.handle_timeout(tn);
        assert!(!fired);
        assert!(scheduler.poll_timeout() > tn);
    }

    #[test]
    fn average_size_follows_rfc_filter() {
        let start = Instant::now();
        let mut scheduler = RtcpScheduler::new(start, G711_BANDWIDTH, MinInterval::Standard, 1);
        scheduler.on_received(72);
        assert!((scheduler.average_size() - (100.0 * 15.0 / 16.0 + 100.0 / 16.0)).abs() < 1e-9);
    }
}
