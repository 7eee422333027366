//! Language model over the OpenAI-compatible Chat Completions API with streaming and tool
//! calls. The same wire format is served by OpenAI, Groq, vLLM, the llama.cpp server and
//! Ollama's `/v1` endpoint.
//!
//! Protocol (OpenAI API reference, "Create chat completion" and "The chat completion chunk
//! object"): `POST {base}/chat/completions` with `stream: true` responds with server-sent events
//! whose `data` is a JSON chunk; `choices[0].delta.content` carries text, and
//! `choices[0].delta.tool_calls` carries tool calls in fragments keyed by `index` (the first
//! fragment has the `id` and `function.name`, later ones append to `function.arguments`, a JSON
//! text). `finish_reason` ends the choice and `data: [DONE]` ends the stream. An error after the
//! headers arrives as a chunk with an `error` object.
//!
//! Not used: `n` > 1, logprobs, `stream_options.include_usage`, parallel-tool-call settings,
//! structured outputs, audio and image content.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use futures::stream::BoxStream;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{BodyReader, HttpClient};
use super::key::ApiKey;
use super::llm_stream::{ReplyParser, reply_stream};
use super::sse::SseEvent;
use crate::ai::provider::{
    ChatMessage, ChatRequest, LlmEvent, LlmProvider, ProviderError, Role, ToolCall,
};

const PROVIDER: &str = "openai";

/// Chat client for an OpenAI-compatible API.
#[derive(Debug, Clone)]
pub struct OpenAiChat {
    http: HttpClient,
    base_url: String,
    key: ApiKey,
    model: String,
    max_tokens: u32,
}

impl OpenAiChat {
    /// Creates a client. An empty `key` sends no `Authorization` header (local servers);
    /// `max_tokens` 0 leaves the limit to the server.
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
        let mut messages = Vec::with_capacity(request.messages.len() + 1);
        if !request.system.is_empty() {
            messages.push(json!({"role": "system", "content": request.system}));
        }
        messages.extend(request.messages.iter().map(message_json));
        let mut body = json!({
            "model": self.model,
            "stream": true,
            "messages": messages,
        });
        if !request.tools.is_empty() {
            let tools: Vec<Value> = request
                .tools
                .iter()
                .map(|tool| {
                    json!({
                        "type": "function",
                        "function": {
                            "name": tool.name,
                            "description": tool.description,
                            "parameters": tool.parameters,
                        }
                    })
                })
                .collect();
            body["tools"] = Value::Array(tools);
        }
        if self.max_tokens > 0 {
            body["max_tokens"] = json!(self.max_tokens);
        }
        body
    }
}

fn message_json(message: &ChatMessage) -> Value {
    match message.role {
        Role::System => json!({"role": "system", "content": message.content}),
        Role::User => json!({"role": "user", "content": message.content}),
        Role::Tool => json!({
            "role": "tool",
            "tool_call_id": message.tool_call_id,
            "content": message.content,
        }),
        Role::Assistant if message.tool_calls.is_empty() => {
            json!({"role": "assistant", "content": message.content})
        }
        Role::Assistant => {
            let calls: Vec<Value> = message
                .tool_calls
                .iter()
                .map(|call| {
                    json!({
                        "id": call.id,
                        "type": "function",
                        "function": {
                            "name": call.name,
                            "arguments": call.arguments.to_string(),
                        }
                    })
                })
                .collect();
            // The API takes `null` content for a message that only calls tools.
            let content = if message.content.is_empty() {
                Value::Null
            } else {
                Value::String(message.content.clone())
            };
            json!({"role": "assistant", "content": content, "tool_calls": calls})
        }
    }
}

#[async_trait::async_trait]
impl LlmProvider for OpenAiChat {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    async fn stream(
        &self,
        request: ChatRequest,
    ) -> Result<BoxStream<'static, Result<LlmEvent, ProviderError>>, ProviderError> {
        let url = format!("{}/chat/completions", self.base_url);
        let body = self.request_body(&request);
        let started = Instant::now();
        tracing::debug!(call_id = %request.call_id, model = %self.model, "chat request");
        let response = self
            .http
            .send(PROVIDER, &self.key, |client| {
                let builder = client
                    .post(&url)
                    .header("accept", "text/event-stream")
                    .json(&body);
                if self.key.is_empty() {
                    builder
                } else {
                    builder.bearer_auth(self.key.expose())
                }
            })
            .await?;
        let idle = self.http.settings().read_timeout;
        let reader = BodyReader::new(PROVIDER, self.key.clone(), response, idle);
        Ok(reply_stream(
            PROVIDER,
            reader,
            ChunkParser::default(),
            started,
        ))
    }
}

/// Assembles chat completion chunks into reply events.
#[derive(Debug, Default)]
pub struct ChunkParser {
    tool_calls: BTreeMap<u64, PartialToolCall>,
    finish_reason: Option<String>,
}

#[derive(Debug, Default)]
struct PartialToolCall {
    id: String,
    name: String,
    arguments: String,
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<ToolCallDelta>,
}

#[derive(Deserialize)]
struct ToolCallDelta {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionDelta>,
}

#[derive(Deserialize)]
struct FunctionDelta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

impl ChunkParser {
    fn apply_tool_deltas(&mut self, deltas: Vec<ToolCallDelta>) {
        for (position, delta) in deltas.into_iter().enumerate() {
            // Servers that send whole calls in one chunk sometimes leave out `index`.
            let index = delta.index.unwrap_or(position as u64);
            let call = self.tool_calls.entry(index).or_default();
            if let Some(id) = delta.id.filter(|id| !id.is_empty()) {
                call.id = id;
            }
            if let Some(function) = delta.function {
                if let Some(name) = function.name.filter(|name| !name.is_empty()) {
                    call.name = name;
                }
                if let Some(arguments) = function.arguments {
                    call.arguments.push_str(&arguments);
                }
            }
        }
    }

    fn flush_tool_calls(&mut self, out: &mut VecDeque<LlmEvent>) -> Result<(), ProviderError> {
        for (index, call) in std::mem::take(&mut self.tool_calls) {
            out.push_back(LlmEvent::ToolCall(finish_tool_call(index, call)?));
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut VecDeque<LlmEvent>) -> Result<bool, ProviderError> {
        self.flush_tool_calls(out)?;
        out.push_back(LlmEvent::Done);
        Ok(true)
    }
}

fn finish_tool_call(index: u64, call: PartialToolCall) -> Result<ToolCall, ProviderError> {
    if call.name.is_empty() {
        return Err(protocol(format!("tool call {index} has no function name")));
    }
    let arguments = if call.arguments.trim().is_empty() {
        json!({})
    } else {
        serde_json::from_str(&call.arguments).map_err(|err| {
            protocol(format!(
                "arguments of tool call {} are not valid JSON: {err}",
                call.name
            ))
        })?
    };
    Ok(ToolCall {
        id: call.id,
        name: call.name,
        arguments,
    })
}

fn protocol(message: String) -> ProviderError {
    ProviderError::Protocol {
        provider: PROVIDER,
        message,
    }
}

/// Maps an `error` object sent mid-stream to an error, with an HTTP-like status.
fn stream_error(error: &Value) -> ProviderError {
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("error event without a message");
    let kind = [error.get("code"), error.get("type")]
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(" ");
    let status = if let Some(code) = error.get("code").and_then(Value::as_u64) {
        u16::try_from(code).unwrap_or(500)
    } else if kind.contains("rate_limit") {
        429
    } else if kind.contains("invalid_request") || kind.contains("context_length") {
        400
    } else {
        500
    };
    ProviderError::Rejected {
        provider: PROVIDER,
        status,
        message: super::http::shorten(message, 300),
    }
}

impl ReplyParser for ChunkParser {
    fn on_event(
        &mut self,
        event: &SseEvent,
        out: &mut VecDeque<LlmEvent>,
    ) -> Result<bool, ProviderError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            return self.finish(out);
        }
        if data.is_empty() {
            return Ok(false);
        }
        let chunk: Chunk = serde_json::from_str(data)
            .map_err(|err| protocol(format!("chunk is not valid JSON: {err}")))?;
        if let Some(error) = chunk.error {
            return Err(stream_error(&error));
        }
        // A chunk with no choices carries usage only.
        let Some(choice) = chunk.choices.into_iter().next() else {
            return Ok(false);
        };
        if let Some(delta) = choice.delta {
            if let Some(text) = delta.content.filter(|text| !text.is_empty()) {
                out.push_back(LlmEvent::Token(text));
            }
            self.apply_tool_deltas(delta.tool_calls);
        }
        if let Some(reason) = choice.finish_reason {
            // Tool calls are complete once the choice finishes; `[DONE]` follows.
            self.flush_tool_calls(out)?;
            self.finish_reason = Some(reason);
        }
        Ok(false)
    }

    fn on_end(&mut self, out: &mut VecDeque<LlmEvent>) -> Result<(), ProviderError> {
        // Some servers close the stream after `finish_reason` without sending `[DONE]`.
        if self.finish_reason.is_some() {
            self.finish(out)?;
            return Ok(());
        }
        Err(ProviderError::Connect {
            provider: PROVIDER,
            message: "stream ended before the reply finished".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::provider::ToolSpec;

    fn parse(lines: &[&str]) -> (Vec<LlmEvent>, Result<bool, ProviderError>) {
        let mut parser = ChunkParser::default();
        let mut out = VecDeque::new();
        let mut last = Ok(false);
        for line in lines {
            let event = SseEvent {
                event: String::new(),
                data: line.to_string(),
            };
            last = parser.on_event(&event, &mut out);
            if last.is_err() {
                break;
            }
        }
        (out.into_iter().collect(), last)
    }

    #[test]
    fn text_deltas_become_tokens() {
        let (events, last) = parse(&[
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"Hel"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            "[DONE]",
        ]);
        assert_eq!(last, Ok(true));
        assert_eq!(
            events,
            vec![
                LlmEvent::Token("Hel".into()),
                LlmEvent::Token("lo".into()),
                LlmEvent::Done
            ]
        );
    }

    #[test]
    fn tool_call_fragments_assemble_by_index() {
        let (events, _) = parse(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"lookup","arguments":""}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"hangup","arguments":""}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"acc"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ount\": 42}"}}]}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
            "[DONE]",
        ]);
        assert_eq!(
            events,
            vec![
                LlmEvent::ToolCall(ToolCall {
                    id: "call_a".into(),
                    name: "lookup".into(),
                    arguments: json!({"account": 42}),
                }),
                LlmEvent::ToolCall(ToolCall {
                    id: "call_b".into(),
                    name: "hangup".into(),
                    arguments: json!({}),
                }),
                LlmEvent::Done,
            ]
        );
    }

    #[test]
    fn invalid_tool_arguments_are_protocol_error() {
        let (_, last) = parse(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":"{oops"}}]}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
        ]);
        assert!(
            matches!(last, Err(ProviderError::Protocol { .. })),
            "{last:?}"
        );
    }

    #[test]
    fn malformed_chunk_is_protocol_error() {
        let (_, last) = parse(&["{not json"]);
        assert!(matches!(last, Err(ProviderError::Protocol { .. })));
    }

    #[test]
    fn error_chunk_is_rejected_with_status() {
        let (_, last) = parse(&[
            r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#,
        ]);
        assert_eq!(
            last,
            Err(ProviderError::Rejected {
                provider: PROVIDER,
                status: 429,
                message: "Rate limit reached".into()
            })
        );
    }

    #[test]
    fn mutated_chunks_do_not_panic() {
        let chunk = r#"{"choices":[{"index":0,"delta":{"content":"x","tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}"#;
        let bytes = chunk.as_bytes();
        for position in 0..bytes.len() {
            for replacement in [b'"', b'{', b'}', b'[', b'-', b'9', b'n'] {
                let mut mutated = bytes.to_vec();
                mutated[position] = replacement;
                let _ = parse(&[&String::from_utf8_lossy(&mutated), "[DONE]"]);
            }
        }
    }

    #[test]
    fn end_after_finish_reason_is_done() {
        let mut parser = ChunkParser::default();
        let mut out = VecDeque::new();
        let event = SseEvent {
            event: String::new(),
            data: r#"{"choices":[{"delta":{"content":"Hi"},"finish_reason":"stop"}]}"#.into(),
        };
        parser.on_event(&event, &mut out).unwrap();
        parser.on_end(&mut out).unwrap();
        assert_eq!(out.back(), Some(&LlmEvent::Done));
    }

    #[test]
    fn end_without_finish_is_connect_error() {
        let mut parser = ChunkParser::default();
        let result = parser.on_end(&mut VecDeque::new());
        assert!(matches!(result, Err(ProviderError::Connect { .. })));
    }

    fn client() -> OpenAiChat {
        let http = HttpClient::new(super::super::http::HttpSettings::from_config(
            &crate::ai::ProvidersConfig::default(),
        ))
        .unwrap();
        OpenAiChat::new(http, "http://127.0.0.1:9/v1/", ApiKey::default(), "m", 0)
    }

    #[test]
    fn request_body_maps_history_and_tools() {
        let request = ChatRequest {
            system: "Be brief.".into(),
            messages: vec![
                ChatMessage::text(Role::Assistant, "Hello, how can I help?"),
                ChatMessage::text(Role::User, "Check account 42."),
                ChatMessage {
                    role: Role::Assistant,
                    content: String::new(),
                    tool_calls: vec![ToolCall {
                        id: "call_1".into(),
                        name: "lookup".into(),
                        arguments: json!({"account": 42}),
                    }],
                    tool_call_id: String::new(),
                },
                ChatMessage {
                    role: Role::Tool,
                    content: "balance 10".into(),
                    tool_calls: Vec::new(),
                    tool_call_id: "call_1".into(),
                },
            ],
            tools: vec![ToolSpec {
                name: "lookup".into(),
                description: "Finds an account.".into(),
                parameters: json!({"type": "object"}),
            }],
            call_id: "c1".into(),
        };
        let body = client().request_body(&request);
        assert_eq!(body["stream"], json!(true));
        assert_eq!(body.get("max_tokens"), None);
        assert_eq!(
            body["messages"][0],
            json!({"role": "system", "content": "Be brief."})
        );
        assert_eq!(body["messages"][3]["content"], Value::Null);
        assert_eq!(
            body["messages"][3]["tool_calls"][0]["function"]["arguments"],
            json!("{\"account\":42}")
        );
        assert_eq!(
            body["messages"][4],
            json!({"role": "tool", "tool_call_id": "call_1", "content": "balance 10"})
        );
        assert_eq!(body["tools"][0]["type"], json!("function"));
        assert_eq!(body["tools"][0]["function"]["name"], json!("lookup"));
    }

    #[test]
    fn request_body_without_tools_has_no_tools_key() {
        let request = ChatRequest {
            messages: vec![ChatMessage::text(Role::User, "Hi")],
            ..ChatRequest::default()
        };
        let body = client().request_body(&request);
        assert_eq!(body.get("tools"), None);
        assert_eq!(body["messages"].as_array().map(Vec::len), Some(1));
    }
}
