//! Opus encoder settings derived from the peer's `a=fmtp` parameters (RFC 7587 §6.1) and our
//! `[media]` configuration.

use std::collections::BTreeMap;

/// Audio bandwidth an Opus encoder may use, from narrowband to fullband.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OpusBandwidth {
    /// 4 kHz audio bandwidth (8 kHz sampling).
    Narrowband,
    /// 6 kHz (12 kHz sampling).
    Mediumband,
    /// 8 kHz (16 kHz sampling).
    Wideband,
    /// 12 kHz (24 kHz sampling).
    Superwideband,
    /// 20 kHz (48 kHz sampling).
    Fullband,
}

impl OpusBandwidth {
    /// Widest bandwidth a receiver playing at `rate` hertz can reproduce.
    pub fn for_sample_rate(rate: u32) -> Self {
        match rate {
            0..=8_000 => Self::Narrowband,
            8_001..=12_000 => Self::Mediumband,
            12_001..=16_000 => Self::Wideband,
            16_001..=24_000 => Self::Superwideband,
            _ => Self::Fullband,
        }
    }

    /// Upper edge of the audio band, in hertz.
    pub fn audio_bandwidth_hz(self) -> u32 {
        match self {
            Self::Narrowband => 4_000,
            Self::Mediumband => 6_000,
            Self::Wideband => 8_000,
            Self::Superwideband => 12_000,
            Self::Fullband => 20_000,
        }
    }

    pub(super) fn to_library(self) -> audiopus::Bandwidth {
        match self {
            Self::Narrowband => audiopus::Bandwidth::Narrowband,
            Self::Mediumband => audiopus::Bandwidth::Mediumband,
            Self::Wideband => audiopus::Bandwidth::Wideband,
            Self::Superwideband => audiopus::Bandwidth::Superwideband,
            Self::Fullband => audiopus::Bandwidth::Fullband,
        }
    }

    pub(super) fn from_library(bandwidth: audiopus::Bandwidth) -> Option<Self> {
        match bandwidth {
            audiopus::Bandwidth::Narrowband => Some(Self::Narrowband),
            audiopus::Bandwidth::Mediumband => Some(Self::Mediumband),
            audiopus::Bandwidth::Wideband => Some(Self::Wideband),
            audiopus::Bandwidth::Superwideband => Some(Self::Superwideband),
            audiopus::Bandwidth::Fullband => Some(Self::Fullband),
            audiopus::Bandwidth::Auto => None,
        }
    }
}

/// Lowest and highest `maxaveragebitrate` RFC 7587 §6.1 allows, in bits per second.
const BITRATE_RANGE: (u32, u32) = (6_000, 510_000);

/// Packet loss the encoder plans for when the peer asked for in-band FEC but has not yet
/// reported any loss, in percent. libopus adds FEC data only when this is above zero.
pub const INITIAL_FEC_LOSS_PERCENT: u8 = 10;

/// Configuration of one call's Opus encoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusEncoderSettings {
    /// Target bit rate, in bits per second.
    pub bitrate: u32,
    /// Encoder complexity, 0 (cheapest) to 10.
    pub complexity: u8,
    /// Widest audio bandwidth the peer can play.
    pub max_bandwidth: OpusBandwidth,
    /// Add in-band forward error correction (`useinbandfec=1`).
    pub inband_fec: bool,
    /// Discontinuous transmission in silence (`usedtx=1`).
    pub dtx: bool,
    /// Constant bit rate (`cbr=1`).
    pub cbr: bool,
    /// Packet loss the encoder plans for, in percent.
    pub packet_loss_percent: u8,
    /// Packet durations the peer accepts, from `minptime`/`maxptime` in the fmtp, in
    /// milliseconds.
    pub ptime_range_ms: (u32, u32),
}

impl OpusEncoderSettings {
    /// Settings from our configured `bitrate` and `complexity`, limited by the peer's fmtp.
    ///
    /// The encoder always sends mono, because our audio is mono and a mono stream is valid
    /// whatever `stereo` states. `maxplaybackrate` caps the bandwidth, as RFC 7587 §6.1 recommends.
    /// `sprop-maxcapturerate` describes what the peer sends, so it only concerns our decoder.
    /// Every Opus fmtp parameter is a hint, so unknown or malformed ones are ignored.
    pub fn from_fmtp(fmtp: &BTreeMap<String, String>, bitrate: u32, complexity: u8) -> Self {
        let mut settings = Self {
            bitrate: bitrate.clamp(BITRATE_RANGE.0, BITRATE_RANGE.1),
            complexity: complexity.min(10),
            max_bandwidth: OpusBandwidth::Fullband,
            inband_fec: false,
            dtx: false,
            cbr: false,
            packet_loss_percent: 0,
            ptime_range_ms: (10, 60),
        };
        for (key, value) in fmtp {
            settings.apply(key, value.trim());
        }
        settings
    }

    fn apply(&mut self, key: &str, value: &str) {
        let number = value.parse::<u32>().ok();
        let flag = match value {
            "1" => Some(true),
            "0" => Some(false),
            _ => None,
        };
        match key.to_ascii_lowercase().as_str() {
            "maxplaybackrate" => {
                if let Some(rate) = number.filter(|&rate| rate > 0) {
                    self.max_bandwidth = OpusBandwidth::for_sample_rate(rate);
                }
            }
            "maxaveragebitrate" => {
                if let Some(limit) = number {
                    let limit = limit.clamp(BITRATE_RANGE.0, BITRATE_RANGE.1);
                    self.bitrate = self.bitrate.min(limit);
                }
            }
            "useinbandfec" => {
                if let Some(enabled) = flag {
                    self.inband_fec = enabled;
                    self.packet_loss_percent = if enabled { INITIAL_FEC_LOSS_PERCENT } else { 0 };
                }
            }
            "usedtx" => self.dtx = flag.unwrap_or(self.dtx),
            "cbr" => self.cbr = flag.unwrap_or(self.cbr),
            "minptime" => {
                if let Some(ms) = number {
                    self.ptime_range_ms.0 = ms.clamp(10, 60);
                }
            }
            "maxptime" => {
                if let Some(ms) = number {
                    self.ptime_range_ms.1 = ms.clamp(10, 120);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmtp(text: &str) -> BTreeMap<String, String> {
        text.split(';')
            .filter_map(|pair| pair.split_once('='))
            .map(|(key, value)| (key.trim().to_string(), value.trim().to_string()))
            .collect()
    }

    #[test]
    fn desk_phone_limits_are_applied() {
        let params = fmtp(
            "maxplaybackrate=16000;sprop-maxcapturerate=16000;maxaveragebitrate=24000;\
             stereo=0;sprop-stereo=0;useinbandfec=1",
        );
        let settings = OpusEncoderSettings::from_fmtp(&params, 32_000, 5);
        assert_eq!(settings.max_bandwidth, OpusBandwidth::Wideband);
        assert_eq!(settings.bitrate, 24_000);
        assert!(settings.inband_fec);
        assert_eq!(settings.packet_loss_percent, INITIAL_FEC_LOSS_PERCENT);
        assert!(!settings.dtx);
    }

    #[test]
    fn empty_fmtp_keeps_configuration() {
        let settings = OpusEncoderSettings::from_fmtp(&BTreeMap::new(), 24_000, 5);
        assert_eq!(settings.bitrate, 24_000);
        assert_eq!(settings.complexity, 5);
        assert_eq!(settings.max_bandwidth, OpusBandwidth::Fullband);
        assert!(!settings.inband_fec);
        assert_eq!(settings.ptime_range_ms, (10, 60));
    }

    #[test]
    fn lower_configured_bitrate_wins() {
        let settings = OpusEncoderSettings::from_fmtp(&fmtp("maxaveragebitrate=64000"), 20_000, 5);
        assert_eq!(settings.bitrate, 20_000);
    }

    #[test]
    fn out_of_range_values_are_clamped() {
        let settings = OpusEncoderSettings::from_fmtp(&fmtp("maxaveragebitrate=100"), 24_000, 12);
        assert_eq!(settings.bitrate, 6_000);
        assert_eq!(settings.complexity, 10);
    }

    #[test]
    fn malformed_values_are_ignored() {
        let params = fmtp("maxplaybackrate=wide;maxaveragebitrate=-5;useinbandfec=yes;usedtx=2");
        let settings = OpusEncoderSettings::from_fmtp(&params, 24_000, 5);
        assert_eq!(
            settings,
            OpusEncoderSettings::from_fmtp(&BTreeMap::new(), 24_000, 5)
        );
    }

    #[test]
    fn playback_rate_maps_to_bandwidth() {
        let cases = [
            (8_000, OpusBandwidth::Narrowband),
            (12_000, OpusBandwidth::Mediumband),
            (16_000, OpusBandwidth::Wideband),
            (24_000, OpusBandwidth::Superwideband),
            (48_000, OpusBandwidth::Fullband),
        ];
        for (rate, expected) in cases {
            let params = fmtp(&format!("maxplaybackrate={rate}"));
            let settings = OpusEncoderSettings::from_fmtp(&params, 24_000, 5);
            assert_eq!(settings.max_bandwidth, expected, "{rate} Hz");
        }
    }

    #[test]
    fn keys_are_case_insensitive() {
        let settings =
            OpusEncoderSettings::from_fmtp(&fmtp("UseInbandFec=1;USEDTX=1;CBR=1"), 24_000, 5);
        assert!(settings.inband_fec);
        assert!(settings.dtx);
        assert!(settings.cbr);
    }

    #[test]
    fn ptime_bounds_are_read() {
        let settings = OpusEncoderSettings::from_fmtp(&fmtp("minptime=20;maxptime=40"), 24_000, 5);
        assert_eq!(settings.ptime_range_ms, (20, 40));
    }
}
