//! Trunk matching by source address, with each trunk's concurrent-call and calls-per-second
//! limits.

use std::net::IpAddr;
use std::time::Instant;

use ipnet::IpNet;

use super::rate::TokenBucket;
use crate::sip::TrunkConfig;

/// Trunk details handed to the call layer with each call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkInfo {
    /// `[[trunk]] name`.
    pub name: String,
    /// Country calling code for national numbers.
    pub default_country: String,
    /// Headers tried in order to find the dialled number.
    pub number_from: Vec<String>,
    /// Whether P-Called-Party-ID from this trunk is trusted.
    pub trusted: bool,
    /// Accept RTP only from the latched source.
    pub strict_rtp_source: bool,
}

/// The limit a new call from a trunk exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitExceeded {
    /// `max_calls` calls are already up.
    ConcurrentCalls,
    /// More than `max_cps` new calls in the last second.
    CallsPerSecond,
}

/// One configured trunk and its live counters.
#[derive(Debug)]
pub struct Trunk {
    /// The trunk's settings.
    pub config: TrunkConfig,
    /// Details reported with each call.
    pub info: TrunkInfo,
    networks: Vec<IpNet>,
    active_calls: u32,
    cps: Option<TokenBucket>,
}

impl Trunk {
    fn new(now: Instant, config: &TrunkConfig) -> Trunk {
        // Entries were checked by TrunkConfig::validate; a bare address is a host network.
        let networks = config
            .sources
            .iter()
            .filter_map(|s| {
                s.parse::<IpNet>()
                    .ok()
                    .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
            })
            .collect();
        let cps =
            (config.max_cps > 0).then(|| TokenBucket::new(now, config.max_cps, config.max_cps));
        Trunk {
            info: TrunkInfo {
                name: config.name.clone(),
                default_country: config.default_country.clone(),
                number_from: config.number_from.clone(),
                trusted: config.trusted,
                strict_rtp_source: config.strict_rtp_source,
            },
            config: config.clone(),
            networks,
            active_calls: 0,
            cps,
        }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|net| net.contains(&ip))
    }

    /// Returns whether the trunk asks for digest authentication.
    pub fn requires_auth(&self) -> bool {
        !self.config.username.is_empty()
    }

    /// Calls currently counted against `max_calls`.
    pub fn active_calls(&self) -> u32 {
        self.active_calls
    }
}

/// Index into [`TrunkTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrunkId(pub usize);

/// Every configured trunk; the first whose sources contain the address wins.
#[derive(Debug)]
pub struct TrunkTable {
    trunks: Vec<Trunk>,
}

impl TrunkTable {
    /// Builds the table from `[[trunk]]` entries.
    pub fn new(now: Instant, configs: &[TrunkConfig]) -> TrunkTable {
        TrunkTable {
            trunks: configs.iter().map(|c| Trunk::new(now, c)).collect(),
        }
    }

    /// Returns the trunk a source address belongs to. IPv4-mapped IPv6 addresses match IPv4 networks.
    pub fn find(&self, ip: IpAddr) -> Option<TrunkId> {
        let ip = ip.to_canonical();
        self.trunks.iter().position(|t| t.contains(ip)).map(TrunkId)
    }

    /// Returns the trunk with `id`.
    pub fn get(&self, id: TrunkId) -> Option<&Trunk> {
        self.trunks.get(id.0)
    }

    /// Admits one new call against the trunk's limits and counts it as active.
    pub fn admit(&mut self, now: Instant, id: TrunkId) -> Result<(), LimitExceeded> {
        let Some(trunk) = self.trunks.get_mut(id.0) else {
            return Ok(());
        };
        if trunk.config.max_calls > 0 && trunk.active_calls >= trunk.config.max_calls {
            return Err(LimitExceeded::ConcurrentCalls);
        }
        if let Some(bucket) = &mut trunk.cps
            && !bucket.try_take(now)
        {
            return Err(LimitExceeded::CallsPerSecond);
        }
        trunk.active_calls += 1;
        Ok(())
    }

    /// Returns each trunk's name and active call count, in configuration order.
    pub fn active_calls(&self) -> Vec<(String, u32)> {
        self.trunks
            .iter()
            .map(|t| (t.info.name.clone(), t.active_calls))
            .collect()
    }

    /// Releases a call counted by [`TrunkTable::admit`].
    pub fn release(&mut self, id: TrunkId) {
        if let Some(trunk) = self.trunks.get_mut(id.0) {
            trunk.active_calls = trunk.active_calls.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(now: Instant) -> TrunkTable {
        let carrier = TrunkConfig {
            name: "carrier".into(),
            sources: vec!["203.0.113.0/24".into(), "2001:db8::5".into()],
            max_calls: 2,
            max_cps: 3,
            ..TrunkConfig::default()
        };
        TrunkTable::new(now, &[carrier, TrunkConfig::default()])
    }

    #[test]
    fn sources_match_first_trunk() {
        let now = Instant::now();
        let table = table(now);
        assert_eq!(table.find("203.0.113.5".parse().unwrap()), Some(TrunkId(0)));
        assert_eq!(table.find("2001:db8::5".parse().unwrap()), Some(TrunkId(0)));
        assert_eq!(table.find("127.0.0.1".parse().unwrap()), Some(TrunkId(1)));
        assert_eq!(
            table.find("::ffff:127.0.0.1".parse().unwrap()),
            Some(TrunkId(1))
        );
        assert_eq!(table.find("::1".parse().unwrap()), Some(TrunkId(1)));
        assert_eq!(table.find("198.51.100.1".parse().unwrap()), None);
    }

    #[test]
    fn concurrent_limit_counts_releases() {
        let now = Instant::now();
        let mut table = table(now);
        let id = TrunkId(0);
        assert_eq!(table.admit(now, id), Ok(()));
        assert_eq!(table.admit(now, id), Ok(()));
        assert_eq!(table.admit(now, id), Err(LimitExceeded::ConcurrentCalls));
        table.release(id);
        assert_eq!(table.admit(now, id), Ok(()));
        assert_eq!(table.get(id).unwrap().active_calls(), 2);
    }

    #[test]
    fn cps_limit_refills() {
        let now = Instant::now();
        let mut table = table(now);
        let id = TrunkId(0);
        for _ in 0..2 {
            table.admit(now, id).unwrap();
            table.release(id);
        }
        table.admit(now, id).unwrap();
        table.release(id);
        assert_eq!(table.admit(now, id), Err(LimitExceeded::CallsPerSecond));
        let later = now + std::time::Duration::from_secs(1);
        assert_eq!(table.admit(later, id), Ok(()));
    }
}
