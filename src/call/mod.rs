//! One call's life: ties a SIP dialog, an RTP session, the media pipeline, the AI loop and
//! the tenant's admission together.

pub mod metrics;
