//! Who may send requests: trunk matching by source address, digest authentication, and the
//! rate limits that keep one source or trunk from crowding out the others.

mod digest;
mod rate;
mod trunks;

pub use digest::{Credentials, DigestAlgorithm, DigestAuth, DigestVerdict};
pub use rate::{KeyedLimiter, TokenBucket};
pub use trunks::{LimitExceeded, Trunk, TrunkId, TrunkInfo, TrunkTable};
