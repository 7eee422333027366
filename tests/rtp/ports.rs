//! Port reuse: a port freed by one call rests in quarantine while the previous peer may still
//! send to it, and no end of a call leaks a port.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use voicegate::rtp::{PortAllocator, RtpConfig};

#[test]
fn next_call_gets_another_port() {
    let allocator = PortAllocator::new(&RtpConfig::default());
    let start = Instant::now();
    // Call X (tenant A) ends on 30000; call Y (tenant B) starts 100 ms later.
    let x = allocator.allocate(start).unwrap();
    assert_eq!(x.rtp_port(), 30_000);
    x.release(start + Duration::from_secs(30));
    let y = allocator
        .allocate(start + Duration::from_millis(30_100))
        .unwrap();
    assert_ne!(y.rtp_port(), 30_000);
}

#[test]
fn quarantined_port_is_refused_rather_than_reused() {
    let config = RtpConfig {
        port_min: 30_000,
        port_max: 30_005,
        port_quarantine_secs: 10,
        ..RtpConfig::default()
    };
    let allocator = PortAllocator::new(&config);
    let start = Instant::now();
    let x = allocator.allocate(start).unwrap();
    let _y = allocator.allocate(start).unwrap();
    let _z = allocator.allocate(start).unwrap();
    assert_eq!(x.rtp_port(), 30_000);
    x.release(start);

    // X's gateway keeps sending to 30000 for 8 s: during that time, a new call is refused a
    // port rather than given 30000.
    for second in 0..10 {
        let now = start + Duration::from_secs(second);
        assert!(allocator.allocate(now).is_err(), "second {second}");
    }
    let after = allocator.allocate(start + Duration::from_secs(10)).unwrap();
    assert_eq!(after.rtp_port(), 30_000);
}

#[test]
fn no_port_leaks_over_ten_thousand_calls() {
    let allocator = PortAllocator::with_range(30_000, 39_999, Duration::from_secs(10));
    let start = Instant::now();
    let mut rng = StdRng::seed_from_u64(30);
    let mut live = Vec::new();
    for n in 0..10_000u64 {
        let now = start + Duration::from_millis(3 * n);
        live.push(allocator.allocate(now).unwrap());
        // Calls end in random order, by an explicit release or by dropping the lease on an
        // error path.
        while live.len() > 40 {
            let index = rng.random_range(0..live.len());
            let lease = live.swap_remove(index);
            if rng.random_bool(0.5) {
                lease.release(now);
            } else {
                drop(lease);
            }
        }
    }
    drop(live);
    assert_eq!(allocator.in_use(), 0);
    let end = start + Duration::from_secs(30) + Duration::from_secs(60);
    // Leases dropped after the last allocation start their quarantine only now.
    let resting = allocator.quarantined(end);
    assert!(resting <= 41, "{resting}");
    assert_eq!(allocator.quarantined(end + Duration::from_secs(10)), 0);
    assert_eq!(allocator.capacity(), 5_000);
}
