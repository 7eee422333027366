//! The conversation loop: turn taking, provider traits and clients for speech-to-text,
//! language models and text-to-speech, the embedded offline providers, and per-turn latency
//! tracing. The loop sees PCM frames and text, never sockets.

pub mod cloud;
mod config;
pub mod conversation;
pub mod metrics;
pub mod offline;
pub mod provider;
pub mod registry;
pub mod sentence;
pub mod tools;

pub use config::{
    AgentConfig, AiConfig, IntentConfig, LLM_NAMES, ProvidersConfig, STT_NAMES, TTS_NAMES,
};
pub use registry::Registry;
