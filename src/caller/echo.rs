//! The `--echo GAIN_DB:DELAY_MS` setting: the caller sends what it hears back to the far end,
//! attenuated and delayed, to test how the far end copes with its own echo.

use crate::media::session::SimulatedEcho;

/// Lowest accepted echo gain, in dB.
pub const MIN_GAIN_DB: f32 = -40.0;
/// Highest accepted echo gain, in dB: the echo is never louder than what was heard.
pub const MAX_GAIN_DB: f32 = 0.0;
/// Longest accepted echo delay, in milliseconds.
pub const MAX_DELAY_MS: u32 = 500;

/// Error for an invalid `--echo` value. Its message names what to give instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EchoSpecError {
    /// The value has no `:` between gain and delay.
    #[error("give GAIN_DB:DELAY_MS, for example -12:150")]
    Format,
    /// The gain is not a number from -40 to 0.
    #[error(
        "gain `{0}` is not a number from {min} to {max} dB; give GAIN_DB:DELAY_MS, for example -12:150",
        min = MIN_GAIN_DB,
        max = MAX_GAIN_DB
    )]
    Gain(String),
    /// The delay is not a whole number from 0 to 500.
    #[error(
        "delay `{0}` is not a whole number of milliseconds from 0 to {max}; give GAIN_DB:DELAY_MS, for example -12:150",
        max = MAX_DELAY_MS
    )]
    Delay(String),
}

/// Parses `GAIN_DB:DELAY_MS`, such as `-12:150`, with the gain from -40 to 0 dB and the delay
/// from 0 to 500 ms.
pub fn parse_echo(text: &str) -> Result<SimulatedEcho, EchoSpecError> {
    let (gain, delay) = text.split_once(':').ok_or(EchoSpecError::Format)?;
    let gain_db = gain
        .trim()
        .parse::<f32>()
        .ok()
        // The range check also rejects NaN.
        .filter(|gain_db| (MIN_GAIN_DB..=MAX_GAIN_DB).contains(gain_db))
        .ok_or_else(|| EchoSpecError::Gain(gain.to_string()))?;
    let delay_ms = delay
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|delay_ms| *delay_ms <= MAX_DELAY_MS)
        .ok_or_else(|| EchoSpecError::Delay(delay.to_string()))?;
    Ok(SimulatedEcho { gain_db, delay_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo(gain_db: f32, delay_ms: u32) -> SimulatedEcho {
        SimulatedEcho { gain_db, delay_ms }
    }

    #[test]
    fn echo_spec_accepts_range_ends() {
        let cases = [
            ("-12:150", echo(-12.0, 150)),
            ("-40:0", echo(-40.0, 0)),
            ("0:500", echo(0.0, 500)),
            ("-6.5:50", echo(-6.5, 50)),
            ("-20 : 200", echo(-20.0, 200)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_echo(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn echo_spec_rejects_missing_colon() {
        assert_eq!(parse_echo("-12"), Err(EchoSpecError::Format));
        assert_eq!(parse_echo(""), Err(EchoSpecError::Format));
    }

    #[test]
    fn echo_spec_rejects_bad_gain() {
        for gain in ["-41", "1", "0.5", "NaN", "inf", "loud", ""] {
            let text = format!("{gain}:100");
            assert_eq!(
                parse_echo(&text),
                Err(EchoSpecError::Gain(gain.to_string())),
                "{text}"
            );
        }
    }

    #[test]
    fn echo_spec_rejects_bad_delay() {
        for delay in ["501", "-1", "150.5", "soon", "", "100:2"] {
            let text = format!("-12:{delay}");
            assert_eq!(
                parse_echo(&text),
                Err(EchoSpecError::Delay(delay.to_string())),
                "{text}"
            );
        }
    }

    #[test]
    fn echo_spec_error_names_value_and_range() {
        let message = parse_echo("-50:100").unwrap_err().to_string();
        assert!(message.contains("`-50`"), "{message}");
        assert!(message.contains("-40 to 0 dB"), "{message}");
        let message = parse_echo("-12:900").unwrap_err().to_string();
        assert!(message.contains("`900`"), "{message}");
        assert!(message.contains("0 to 500"), "{message}");
    }
}
