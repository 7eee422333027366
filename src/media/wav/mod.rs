//! WAV files: reading any common WAV into 16 kHz mono, and writing 16-bit mono or stereo.
//!
//! The reader takes 8-bit unsigned and 16, 24 and 32-bit signed PCM, 32 and 64-bit float,
//! G.711 mu-law and A-law, in `WAVE_FORMAT_EXTENSIBLE` files too, with any channel count
//! (mixed down by averaging) and any rate the resampler converts. It parses the RIFF chunks
//! itself because `hound` does not read G.711. Writing goes through `hound`.

mod parse;
mod write;

use std::path::{Path, PathBuf};

pub use parse::{WavEncoding, WavFormat};
pub use write::{write_mono, write_stereo};

use crate::audio::SAMPLE_RATE;
use crate::media::resample::{ResampleError, convert_clip};

/// Error reading or writing a WAV file.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    /// Reading or writing the file failed.
    #[error("WAV file {path}: {source}")]
    Io {
        /// File concerned.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The bytes do not start with a RIFF/WAVE header.
    #[error("not a WAV file (no RIFF/WAVE header)")]
    NotWav,
    /// A required chunk is missing.
    #[error("WAV file has no `{0}` chunk")]
    MissingChunk(&'static str),
    /// The `fmt ` chunk is malformed.
    #[error("invalid WAV format: {0}")]
    InvalidFormat(&'static str),
    /// The sample encoding is not one we decode.
    #[error("unsupported WAV encoding: format tag {tag:#06x} with {bits} bits per sample")]
    UnsupportedEncoding {
        /// `wFormatTag` (or the extensible sub-format).
        tag: u16,
        /// Bits per sample.
        bits: u16,
    },
    /// The file's sample rate cannot be converted.
    #[error("cannot convert WAV audio: {0}")]
    Resample(#[from] ResampleError),
    /// `hound` failed to write the file.
    #[error("writing WAV file {path} failed: {message}")]
    Write {
        /// File concerned.
        path: PathBuf,
        /// Library message.
        message: String,
    },
}

/// Mono audio read from a WAV file, at the file's own rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WavAudio {
    /// Format of the file.
    pub format: WavFormat,
    /// Samples, all channels mixed down to one.
    pub samples: Vec<i16>,
}

impl WavAudio {
    /// Decodes WAV file contents.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WavError> {
        let (format, data) = parse::parse(bytes)?;
        Ok(Self {
            format,
            samples: parse::decode_mono(format, data),
        })
    }

    /// Reads and decodes a WAV file.
    pub fn open(path: &Path) -> Result<Self, WavError> {
        let bytes = std::fs::read(path).map_err(|source| WavError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes)
    }

    /// Returns the samples converted to `rate` hertz, with the resampler delay compensated.
    pub fn resampled(&self, rate: u32) -> Result<Vec<i16>, WavError> {
        Ok(convert_clip(&self.samples, self.format.sample_rate, rate)?)
    }
}

/// Reads any supported WAV file as 16 kHz mono, the internal format.
pub fn read_16k(path: &Path) -> Result<Vec<i16>, WavError> {
    WavAudio::open(path)?.resampled(SAMPLE_RATE)
}

/// Decodes WAV file contents (for example `espeak-ng --stdout` output) as 16 kHz mono.
pub fn decode_16k(bytes: &[u8]) -> Result<Vec<i16>, WavError> {
    WavAudio::from_bytes(bytes)?.resampled(SAMPLE_RATE)
}
