//! Cloud provider clients against local servers that speak each provider's protocol: the
//! exact requests, the parsed output, slow starts, error statuses, errors mid-stream, dropped
//! connections, servers that never respond, malformed frames, cancellation, and Deepgram's
//! reconnect with replay.

#[path = "ai_cloud/chat.rs"]
mod chat;
#[path = "ai_cloud/deepgram.rs"]
mod deepgram;
#[path = "ai_cloud/support/mod.rs"]
mod support;
#[path = "ai_cloud/transcription.rs"]
mod transcription;
#[path = "ai_cloud/tts.rs"]
mod tts;
