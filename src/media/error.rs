//! Errors of the media engine and sessions.

use crate::media::codec::CodecError;
use crate::rtp::PortError;

/// Failure of a media engine or session operation.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The negotiated codec could not be set up.
    #[error("cannot set up codec: {0}")]
    Codec(#[from] CodecError),
    /// No RTP port was free in the configured range.
    #[error("no free RTP port: {0}")]
    Port(#[from] PortError),
    /// Every free port in the range failed to bind.
    #[error("cannot bind an RTP port on {addr}: {source}")]
    Bind {
        /// Address tried.
        addr: std::net::IpAddr,
        /// Last bind error.
        source: std::io::Error,
    },
    /// A worker thread could not be started.
    #[error("cannot start media worker: {0}")]
    Spawn(std::io::Error),
    /// A configuration value cannot be used.
    #[error("invalid media setting {key}: {message}")]
    Config {
        /// Dotted key.
        key: &'static str,
        /// Description of the problem.
        message: String,
    },
    /// The media workers have stopped or their command queue is full.
    #[error("media engine is not accepting commands ({0})")]
    Unavailable(&'static str),
}
