//! The media engine: worker threads that drive many calls' media sessions over real sockets.

pub mod forward;
pub mod socket;
