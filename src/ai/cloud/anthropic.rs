//! Language model over the Anthropic Messages API with streaming and tool use.
//!
//! Protocol (Anthropic API docs, "Messages" and "Streaming Messages"): `POST {base}/messages`
//! with the headers `x-api-key` and `anthropic-version: 2023-06-01`, the system prompt as the
//! top-level `system` field and `stream: true`. The response is server-sent events named by
//! type:
//!
//! - `message_start` opens the message;
//! - per content block, `content_block_start` (a `text` or `tool_use` block), then
//!   `content_block_delta` events (`text_delta` with text, or `input_json_delta` with a piece
//!   of the tool input's JSON text), then `content_block_stop`;
//! - `message_delta` carries the `stop_reason`, and `message_stop` ends the message;
//! - `ping` events may come at any time, and `error` events report failures after the headers.
//!
//! Tool results go back as `tool_result` blocks in a user message.
//!
//! Not used: images and documents, prompt caching, extended thinking (its blocks are skipped),
//! citations, `stop_sequences`, `temperature`.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use futures::stream::BoxStream;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{BodyReader, HttpClient, shorten};
use super::key::ApiKey;
use super::llm_stream::{ReplyParser, reply_stream};
use super::sse::SseEvent;
use crate::ai::provider::{
    ChatMessage, ChatRequest, LlmEvent, LlmProvider, ProviderError, Role, ToolCall,
};

const PROVIDER: &str = "anthropic";
/// API version header value this client is written against.
pub const API_VERSION: &str = "2023-06-01";
/// User turn put before a history that starts with the assistant (the greeting), because the
/// Messages API expects the conversation to open with a user message.
const CALL_STARTED: &str = "(The call was answered.)";

/// Chat client for the Anthropic Messages API.
#[derive(Debug, Clone)]
pub struct AnthropicChat {
    http: HttpClient,
    base_url: String,
    key: ApiKey,
    model: String,
    max_tokens: u32,
}

impl AnthropicChat {
    /// Creates a client.
    pub fn new(
        http: HttpClient,
        base_url: &str,
        key: ApiKey,
        model: &str,
        max_tokens: u32,
    ) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            key,
            model: model.to_string(),
            max_tokens,
        }
    }

    /// Builds the JSON request body.
    pub fn request_body(&self, request: &ChatRequest) -> Value {
        let mut system = request.system.clone();
        for message in request.messages.iter().filter(|m| m.role == Role::System) {
            if !system.is_empty() {
                system.push_str("\n\n");
            }
            system.push_str(&message.content);
        }
        let mut body = json!({
            "model": self.model,
            "max_tokens": self.max_tokens,
            "stream": true,
            "messages": messages_json(&request.messages),
        });
        if !system.is_empty() {
            body["system"] = Value::String(system);
        }
        if !request.tools.is_empty() {
            let tools: Vec<Value> = request
                .tools
                .iter()
                .map(|tool| {
                    json!({
                        "name": tool.name,
                        "description": tool.description,
                        "input_schema": tool.parameters,
                    })
                })
                .collect();
            body["tools"] = Value::Array(tools);
        }
        body
    }
}

/// Maps the history to Messages API turns: tool results become user turns, consecutive turns
/// of one role merge into one, and empty turns are left out.
fn messages_json(history: &[ChatMessage]) -> Vec<Value> {
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for message in history {
        let (role, blocks) = match message.role {
            Role::System => continue,
            Role::User => ("user", text_block(&message.content)),
            Role::Tool => (
                "user",
                vec![json!({
                    "type": "tool_result",
                    "tool_use_id": message.tool_call_id,
                    "content": message.content,
                })],
            ),
            Role::Assistant => {
                let mut blocks = text_block(&message.content);
                blocks.extend(message.tool_calls.iter().map(tool_use_block));
                ("assistant", blocks)
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last_role, last_blocks)) if *last_role == role => last_blocks.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    if turns.first().is_some_and(|(role, _)| *role == "assistant") {
        turns.insert(0, ("user", text_block(CALL_STARTED)));
    }
    turns
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect()
}

fn text_block(text: &str) -> Vec<Value> {
    // The API rejects empty text blocks.
    if text.trim().is_empty() {
        Vec::new()
    } else {
        vec![json!({"type": "text", "text": text})]
    }
}

fn tool_use_block(call: &ToolCall) -> Value {
    // The API requires `input` to be an object. Models produce objects, but a history built by
    // hand may hold other JSON.
    let input = if call.arguments.is_object() {
        call.arguments.clone()
    } else {
        json!({})
    };
    json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input})
}

#[async_trait::async_trait]
impl LlmProvider for AnthropicChat {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    async fn stream(
        &self,
        request: ChatRequest,
    ) -> Result<BoxStream<'static, Result<LlmEvent, ProviderError>>, ProviderError> {
        if self.key.is_empty() {
            return Err(ProviderError::Config {
                provider: PROVIDER,
                message: "missing API key; set providers.anthropic_api_key or ANTHROPIC_API_KEY"
                    .into(),
            });
        }
        let url = format!("{}/messages", self.base_url);
        let body = self.request_body(&request);
        let started = Instant::now();
        tracing::debug!(call_id = %request.call_id, model = %self.model, "messages request");
        let response = self
            .http
            .send(PROVIDER, &self.key, |client| {
                let mut key = reqwest::header::HeaderValue::from_str(self.key.expose())
                    .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static("invalid"));
                key.set_sensitive(true);
                client
                    .post(&url)
                    .header("x-api-key", key)
                    .header("anthropic-version", API_VERSION)
                    .header("accept", "text/event-stream")
                    .json(&body)
            })
            .await?;
        let idle = self.http.settings().read_timeout;
        let reader = BodyReader::new(PROVIDER, self.key.clone(), response, idle);
        Ok(reply_stream(
            PROVIDER,
            reader,
            EventParser::default(),
            started,
        ))
    }
}

/// Assembles Messages API stream events into reply events.
#[derive(Debug, Default)]
pub struct EventParser {
    blocks: HashMap<u64, Block>,
    stop_reason: Option<String>,
}

#[derive(Debug)]
enum Block {
    Text,
    ToolUse {
        id: String,
        name: String,
        json: String,
    },
    /// A block type this client does not use (thinking, server tools).
    Other,
}

#[derive(Deserialize)]
struct StreamEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    content_block: Option<Value>,
    #[serde(default)]
    delta: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
}

fn protocol(message: String) -> ProviderError {
    ProviderError::Protocol {
        provider: PROVIDER,
        message,
    }
}

fn text_field<'a>(value: &'a Value, field: &str) -> &'a str {
    value.get(field).and_then(Value::as_str).unwrap_or_default()
}

/// Maps an error event's `type` to the HTTP status the API documents for it.
fn error_status(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 500,
    }
}

impl EventParser {
    fn index(event: &StreamEvent) -> Result<u64, ProviderError> {
        event
            .index
            .ok_or_else(|| protocol(format!("{} without an index", event.kind)))
    }

    fn start_block(
        &mut self,
        event: &StreamEvent,
        out: &mut VecDeque<LlmEvent>,
    ) -> Result<(), ProviderError> {
        let index = Self::index(event)?;
        let block = event
            .content_block
            .as_ref()
            .ok_or_else(|| protocol("content_block_start without a content_block".into()))?;
        let block = match text_field(block, "type") {
            "text" => {
                let text = text_field(block, "text");
                if !text.is_empty() {
                    out.push_back(LlmEvent::Token(text.to_string()));
                }
                Block::Text
            }
            "tool_use" => Block::ToolUse {
                id: text_field(block, "id").to_string(),
                name: text_field(block, "name").to_string(),
                json: String::new(),
            },
            _ => Block::Other,
        };
        self.blocks.insert(index, block);
        Ok(())
    }

    fn apply_delta(
        &mut self,
        event: &StreamEvent,
        out: &mut VecDeque<LlmEvent>,
    ) -> Result<(), ProviderError> {
        let index = Self::index(event)?;
        let delta = event
            .delta
            .as_ref()
            .ok_or_else(|| protocol("content_block_delta without a delta".into()))?;
        match (text_field(delta, "type"), self.blocks.get_mut(&index)) {
            ("text_delta", _) => {
                let text = text_field(delta, "text");
                if !text.is_empty() {
                    out.push_back(LlmEvent::Token(text.to_string()));
                }
            }
            ("input_json_delta", Some(Block::ToolUse { json, .. })) => {
                json.push_str(text_field(delta, "partial_json"));
            }
            ("input_json_delta", _) => {
                return Err(protocol(format!(
                    "input_json_delta for block {index}, which is not a tool_use block"
                )));
            }
            // Thinking, signature and citation deltas carry nothing to speak.
            _ => {}
        }
        Ok(())
    }

    fn stop_block(
        &mut self,
        event: &StreamEvent,
        out: &mut VecDeque<LlmEvent>,
    ) -> Result<(), ProviderError> {
        let index = Self::index(event)?;
        let Some(Block::ToolUse { id, name, json }) = self.blocks.remove(&index) else {
            return Ok(());
        };
        let arguments = if json.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(&json).map_err(|err| {
                protocol(format!(
                    "input of tool call {name} is not valid JSON: {err}"
                ))
            })?
        };
        out.push_back(LlmEvent::ToolCall(ToolCall {
            id,
            name,
            arguments,
        }));
        Ok(())
    }
}

impl ReplyParser for EventParser {
    fn on_event(
        &mut self,
        event: &SseEvent,
        out: &mut VecDeque<LlmEvent>,
    ) -> Result<bool, ProviderError> {
        let parsed: StreamEvent = serde_json::from_str(&event.data)
            .map_err(|err| protocol(format!("event {} is not valid JSON: {err}", event.event)))?;
        match parsed.kind.as_str() {
            "content_block_start" => self.start_block(&parsed, out)?,
            "content_block_delta" => self.apply_delta(&parsed, out)?,
            "content_block_stop" => self.stop_block(&parsed, out)?,
            "message_delta" => {
                if let Some(reason) = parsed
                    .delta
                    .as_ref()
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    self.stop_reason = Some(reason.to_string());
                }
            }
            "message_stop" => {
                out.push_back(LlmEvent::Done);
                return Ok(true);
            }
            "error" => {
                let error = parsed.error.unwrap_or(Value::Null);
                return Err(ProviderError::Rejected {
                    provider: PROVIDER,
                    status: error_status(text_field(&error, "type")),
                    message: shorten(text_field(&error, "message"), 300),
                });
            }
            // `message_start`, `ping` and event types added later carry nothing to speak.
            _ => {}
        }
        Ok(false)
    }

    fn on_end(&mut self, _out: &mut VecDeque<LlmEvent>) -> Result<(), ProviderError> {
        Err(ProviderError::Connect {
            provider: PROVIDER,
            message: format!(
                "stream ended before message_stop (stop reason {})",
                self.stop_reason.as_deref().unwrap_or("none")
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::provider::ToolSpec;

    fn parse(events: &[(&str, &str)]) -> (Vec<LlmEvent>, Result<bool, ProviderError>) {
        let mut parser = EventParser::default();
        let mut out = VecDeque::new();
        let mut last = Ok(false);
        for (name, data) in events {
            let event = SseEvent {
                event: name.to_string(),
                data: data.to_string(),
            };
            last = parser.on_event(&event, &mut out);
            if last.is_err() {
                break;
            }
        }
        (out.into_iter().collect(), last)
    }

    #[test]
    fn text_and_tool_use_stream() {
        let (events, last) = parse(&[
            (
                "message_start",
                r#"{"type":"message_start","message":{"id":"msg_1","role":"assistant","content":[]}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            ("ping", r#"{"type":"ping"}"#),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me check."}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"lookup","input":{}}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"account\": "}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"42}"}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":1}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":20}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ]);
        assert_eq!(last, Ok(true));
        assert_eq!(
            events,
            vec![
                LlmEvent::Token("Let me check.".into()),
                LlmEvent::ToolCall(ToolCall {
                    id: "toolu_1".into(),
                    name: "lookup".into(),
                    arguments: json!({"account": 42}),
                }),
                LlmEvent::Done,
            ]
        );
    }

    #[test]
    fn tool_use_without_input_has_empty_object() {
        let (events, _) = parse(&[
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"hangup","input":{}}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
        ]);
        assert_eq!(
            events,
            vec![LlmEvent::ToolCall(ToolCall {
                id: "t".into(),
                name: "hangup".into(),
                arguments: json!({}),
            })]
        );
    }

    #[test]
    fn error_event_maps_type_to_status() {
        let (_, last) = parse(&[(
            "error",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        )]);
        assert_eq!(
            last,
            Err(ProviderError::Rejected {
                provider: PROVIDER,
                status: 529,
                message: "Overloaded".into()
            })
        );
    }

    #[test]
    fn unknown_events_and_thinking_are_skipped() {
        let (events, last) = parse(&[
            ("future_event", r#"{"type":"future_event","x":1}"#),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
        ]);
        assert_eq!(last, Ok(false));
        assert!(events.is_empty());
    }

    #[test]
    fn malformed_events_are_protocol_errors() {
        let cases = [
            ("content_block_delta", "{oops"),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":"x"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{"}}"#,
            ),
            ("x", r#"{"no_type":true}"#),
        ];
        for (name, data) in cases {
            let (_, last) = parse(&[(name, data)]);
            assert!(
                matches!(last, Err(ProviderError::Protocol { .. })),
                "{data}: {last:?}"
            );
        }
    }

    #[test]
    fn mutated_events_do_not_panic() {
        let data = r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"n","input":{}}}"#;
        let delta = r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"a\":1}"}}"#;
        let stop = r#"{"type":"content_block_stop","index":0}"#;
        for text in [data, delta, stop] {
            let bytes = text.as_bytes();
            for position in 0..bytes.len() {
                for replacement in [b'"', b'{', b'}', b'1', b'x'] {
                    let mut mutated = bytes.to_vec();
                    mutated[position] = replacement;
                    let mutated = String::from_utf8_lossy(&mutated).to_string();
                    let _ = parse(&[("x", data), ("x", &mutated), ("x", stop)]);
                }
            }
        }
    }

    #[test]
    fn end_before_message_stop_is_connect_error() {
        let mut parser = EventParser::default();
        let result = parser.on_end(&mut VecDeque::new());
        assert!(matches!(result, Err(ProviderError::Connect { .. })));
    }

    fn client() -> AnthropicChat {
        let http = HttpClient::new(super::super::http::HttpSettings::from_config(
            &crate::ai::ProvidersConfig::default(),
        ))
        .unwrap();
        AnthropicChat::new(http, "http://127.0.0.1:9/v1", ApiKey::new("k"), "m", 256)
    }

    #[test]
    fn request_body_maps_history() {
        let request = ChatRequest {
            system: "Be brief.".into(),
            messages: vec![
                ChatMessage::text(Role::Assistant, "Hello!"),
                ChatMessage::text(Role::User, "Check account 42."),
                ChatMessage::text(Role::System, "The caller is verified."),
                ChatMessage {
                    role: Role::Assistant,
                    content: String::new(),
                    tool_calls: vec![
                        ToolCall {
                            id: "t1".into(),
                            name: "lookup".into(),
                            arguments: json!({"account": 42}),
                        },
                        ToolCall {
                            id: "t2".into(),
                            name: "hours".into(),
                            arguments: json!({}),
                        },
                    ],
                    tool_call_id: String::new(),
                },
                ChatMessage {
                    role: Role::Tool,
                    content: "balance 10".into(),
                    tool_calls: Vec::new(),
                    tool_call_id: "t1".into(),
                },
                ChatMessage {
                    role: Role::Tool,
                    content: "9 to 5".into(),
                    tool_calls: Vec::new(),
                    tool_call_id: "t2".into(),
                },
            ],
            tools: vec![ToolSpec {
                name: "lookup".into(),
                description: "Finds an account.".into(),
                parameters: json!({"type": "object"}),
            }],
            call_id: String::new(),
        };
        let body = client().request_body(&request);
        assert_eq!(
            body["system"],
            json!("Be brief.\n\nThe caller is verified.")
        );
        assert_eq!(body["max_tokens"], json!(256));
        let messages = body["messages"].as_array().unwrap();
        let roles: Vec<&str> = messages
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["user", "assistant", "user", "assistant", "user"]);
        assert_eq!(messages[0]["content"][0]["text"], json!(CALL_STARTED));
        assert_eq!(messages[3]["content"].as_array().unwrap().len(), 2);
        assert_eq!(
            messages[3]["content"][0],
            json!({"type": "tool_use", "id": "t1", "name": "lookup", "input": {"account": 42}})
        );
        assert_eq!(
            messages[4]["content"][1],
            json!({"type": "tool_result", "tool_use_id": "t2", "content": "9 to 5"})
        );
        assert_eq!(body["tools"][0]["input_schema"], json!({"type": "object"}));
    }

    #[test]
    fn empty_assistant_turn_is_dropped() {
        let history = vec![
            ChatMessage::text(Role::User, "Hi"),
            ChatMessage::text(Role::Assistant, ""),
            ChatMessage::text(Role::User, "Hello?"),
        ];
        let messages = messages_json(&history);
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0]["content"].as_array().unwrap().len(), 2);
    }
}
