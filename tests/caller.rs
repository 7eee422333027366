//! The test caller against real peers: `voicegate call` and `voicegate loadtest` as a user runs
//! them, with SIPp as the far end, and the UAC's call objects against an in-process server.

mod caller {
    pub mod cli;
    pub mod peer;
    pub mod uac;
}
