//! `voicegate serve`: starts SIP, media, the AI loop and HTTP, and stops them in order.

pub mod http;
