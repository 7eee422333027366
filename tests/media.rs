//! Media path scenarios: the sans-IO session on a virtual clock with generated speech, echo
//! and noise, and the engine over loopback sockets.

#[path = "media/audio.rs"]
mod audio;
#[path = "media/harness.rs"]
mod harness;

#[path = "media/echo.rs"]
mod echo;
#[path = "media/engine.rs"]
mod engine;
#[path = "media/session.rs"]
mod session;
