//! voicegate: a SIP/RTP media server with a built-in AI voice loop.
//!
//! Layers, from the wire up: [`sip`] (signalling) and [`rtp`] (media transport) know nothing of
//! AI or tenants; [`media`] turns RTP into 16 kHz PCM frames and back, runs VAD and decides
//! barge-in; [`ai`] holds the conversation over PCM frames and text; [`tenancy`] stores tenants,
//! limits and records and knows no protocol. Only [`call`] and the binary see everything.

#![warn(missing_docs)]

pub mod ai;
pub mod audio;
pub mod call;
pub mod caller;
pub mod cli;
pub mod config;
pub mod media;
pub mod observability;
pub mod rtp;
pub mod server;
pub mod sip;
pub mod tenancy;
