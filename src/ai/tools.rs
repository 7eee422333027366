//! Tools the agent may call during a conversation. Language models see them as function
//! specs; the scripted agent emits the same calls, so the loop handles both alike.

use serde_json::json;

use crate::ai::provider::ToolSpec;

/// Ends the call after the queued speech has played. No arguments.
pub const END_CALL: &str = "end_call";
/// Transfers the call with SIP REFER. Arguments: `{"target": "<SIP URI or number>"}`;
/// without a target the tenant's configured transfer target is used.
pub const TRANSFER_CALL: &str = "transfer_call";
/// Sends DTMF digits to the caller. Arguments: `{"digits": "123#"}`.
pub const SEND_DTMF: &str = "send_dtmf";

/// Specs of the tools offered to a language model; transfer only when a target is configured.
pub fn specs(transfer_enabled: bool) -> Vec<ToolSpec> {
    let mut specs = vec![
        ToolSpec {
            name: END_CALL.to_owned(),
            description: "Say goodbye first, then end the phone call.".to_owned(),
            parameters: json!({"type": "object", "properties": {}}),
        },
        ToolSpec {
            name: SEND_DTMF.to_owned(),
            description: "Send touch-tone digits (0-9, *, #, A-D) on the call.".to_owned(),
            parameters: json!({
                "type": "object",
                "properties": {"digits": {"type": "string"}},
                "required": ["digits"],
            }),
        },
    ];
    if transfer_enabled {
        specs.push(ToolSpec {
            name: TRANSFER_CALL.to_owned(),
            description: "Transfer the caller to a human colleague.".to_owned(),
            parameters: json!({
                "type": "object",
                "properties": {"target": {"type": "string"}},
            }),
        });
    }
    specs
}
