//! OpenAI-compatible chat and Anthropic Messages streaming.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;
use voicegate::ai::provider::{
    ChatMessage, ChatRequest, LlmEvent, ProviderError, Role, ToolCall, ToolSpec,
};

use crate::support::http::{End, MockHttp, Plan};
use crate::support::{KEY, assert_no_key, collect, config, providers};

const LIMIT: Duration = Duration::from_secs(10);

fn request() -> ChatRequest {
    ChatRequest {
        system: "You answer for Corner Bakery.".into(),
        messages: vec![
            ChatMessage::text(Role::Assistant, "Hello, how can I help?"),
            ChatMessage::text(Role::User, "When do you open?"),
        ],
        tools: vec![ToolSpec {
            name: "hours".into(),
            description: "Opening hours for a day.".into(),
            parameters: json!({"type": "object", "properties": {"day": {"type": "string"}}}),
        }],
        call_id: "call-1".into(),
    }
}

fn sse(events: &[&str]) -> Vec<Vec<u8>> {
    events
        .iter()
        .map(|data| format!("data: {data}\n\n").into_bytes())
        .collect()
}

fn openai_reply() -> Vec<Vec<u8>> {
    sse(&[
        r#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
        r#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"We open "},"finish_reason":null}]}"#,
        r#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"at seven."},"finish_reason":null}]}"#,
        r#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_9","type":"function","function":{"name":"hours","arguments":""}}]},"finish_reason":null}]}"#,
        r#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"day\":"}}]},"finish_reason":null}]}"#,
        r#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"sat\"}"}}]},"finish_reason":null}]}"#,
        r#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
        "[DONE]",
    ])
}

fn expected_openai_events() -> Vec<LlmEvent> {
    vec![
        LlmEvent::Token("We open ".into()),
        LlmEvent::Token("at seven.".into()),
        LlmEvent::ToolCall(ToolCall {
            id: "call_9".into(),
            name: "hours".into(),
            arguments: json!({"day": "sat"}),
        }),
        LlmEvent::Done,
    ]
}

fn ok_events(items: Vec<Result<LlmEvent, ProviderError>>) -> Vec<LlmEvent> {
    items
        .into_iter()
        .map(|item| item.expect("no error"))
        .collect()
}

#[tokio::test]
async fn openai_request_and_reply() {
    let mock = MockHttp::start(vec![Plan::ok("text/event-stream", openai_reply())]).await;
    let llm = providers(&config(&mock.url(""))).llm("openai", "").unwrap();

    let stream = llm.stream(request()).await.expect("accepted");
    let events = ok_events(collect(stream, LIMIT).await);
    assert_eq!(events, expected_openai_events());

    let requests = mock.requests();
    assert_eq!(requests.len(), 1);
    let sent = &requests[0];
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.target, "/v1/chat/completions");
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(sent.header("content-type"), Some("application/json"));
    let body = sent.json();
    assert_eq!(body["model"], json!("gpt-4o-mini"));
    assert_eq!(body["stream"], json!(true));
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": "You answer for Corner Bakery."},
            {"role": "assistant", "content": "Hello, how can I help?"},
            {"role": "user", "content": "When do you open?"},
        ])
    );
    assert_eq!(body["tools"][0]["type"], json!("function"));
    assert_eq!(body["tools"][0]["function"]["name"], json!("hours"));
    assert_eq!(
        body["tools"][0]["function"]["parameters"]["properties"]["day"]["type"],
        json!("string")
    );
}

#[tokio::test]
async fn openai_tenant_key_replaces_configured_key() {
    let mock = MockHttp::start(vec![Plan::ok("text/event-stream", openai_reply())]).await;
    let llm = providers(&config(&mock.url("")))
        .llm("openai", "tenant-key")
        .unwrap();
    collect(llm.stream(request()).await.unwrap(), LIMIT).await;
    assert_eq!(
        mock.requests()[0].header("authorization"),
        Some("Bearer tenant-key")
    );
}

#[tokio::test]
async fn openai_without_key_sends_no_authorization() {
    let mock = MockHttp::start(vec![Plan::ok("text/event-stream", openai_reply())]).await;
    let mut config = config(&mock.url(""));
    config.openai_api_key.clear();
    let llm = providers(&config).llm("openai", "").unwrap();
    collect(llm.stream(request()).await.unwrap(), LIMIT).await;
    assert_eq!(mock.requests()[0].header("authorization"), None);
}

#[tokio::test]
async fn openai_slow_start_then_tokens() {
    let plan = Plan::ok("text/event-stream", openai_reply())
        .headers_after(Duration::from_millis(300))
        .chunk_interval(Duration::from_millis(50));
    let mock = MockHttp::start(vec![plan]).await;
    let llm = providers(&config(&mock.url(""))).llm("openai", "").unwrap();

    let started = Instant::now();
    let stream = llm.stream(request()).await.expect("accepted");
    assert!(started.elapsed() >= Duration::from_millis(300));
    let events = ok_events(collect(stream, LIMIT).await);
    assert_eq!(events, expected_openai_events());
}

#[tokio::test]
async fn openai_401_is_rejected_without_leaking_key() {
    let body = format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {KEY}.","type":"invalid_request_error","code":"invalid_api_key"}}}}"#
    );
    let mock = MockHttp::start(vec![Plan::error(401, &body)]).await;
    let llm = providers(&config(&mock.url(""))).llm("openai", "").unwrap();

    let error = llm.stream(request()).await.err().expect("rejected");
    let ProviderError::Rejected {
        status, message, ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(*status, 401);
    assert_eq!(message, "Incorrect API key provided: ***.");
    assert_no_key(&error);
    assert_eq!(mock.requests().len(), 1, "401 is not retried");
}

#[tokio::test]
async fn openai_429_retries_after_retry_after() {
    let limited =
        Plan::error(429, r#"{"error":{"message":"Rate limit"}}"#).header("retry-after", "1");
    let mock = MockHttp::start(vec![limited, Plan::ok("text/event-stream", openai_reply())]).await;
    let llm = providers(&config(&mock.url(""))).llm("openai", "").unwrap();

    let started = Instant::now();
    let stream = llm.stream(request()).await.expect("accepted after retry");
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(
        ok_events(collect(stream, LIMIT).await),
        expected_openai_events()
    );
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test]
async fn openai_429_long_retry_after_fails() {
    let limited =
        Plan::error(429, r#"{"error":{"message":"Rate limit"}}"#).header("retry-after", "30");
    let mock = MockHttp::start(vec![limited]).await;
    let llm = providers(&config(&mock.url(""))).llm("openai", "").unwrap();

    let error = llm.stream(request()).await.err().expect("rejected");
    assert!(
        matches!(error, ProviderError::Rejected { status: 429, .. }),
        "{error:?}"
    );
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn openai_500_is_retried_then_reported() {
    let mock = MockHttp::start(vec![Plan::error(500, r#"{"error":{"message":"boom"}}"#)]).await;
    let llm = providers(&config(&mock.url(""))).llm("openai", "").unwrap();

    let error = llm.stream(request()).await.err().expect("rejected");
    assert_eq!(
        error,
        ProviderError::Rejected {
            provider: "openai",
            status: 500,
            message: "boom".into()
        }
    );
    assert_eq!(mock.requests().len(), 3, "one request and two retries");
}

#[tokio::test]
async fn openai_error_event_mid_stream() {
    let mut chunks = sse(&[
        r#"{"choices":[{"index":0,"delta":{"content":"We open"}}]}"#,
        r#"{"error":{"message":"The server had an error","type":"server_error"}}"#,
    ]);
    chunks.extend(sse(&[
        r#"{"choices":[{"index":0,"delta":{"content":" never"}}]}"#,
    ]));
    let mock = MockHttp::start(vec![Plan::ok("text/event-stream", chunks)]).await;
    let llm = providers(&config(&mock.url(""))).llm("openai", "").unwrap();

    let items = collect(llm.stream(request()).await.unwrap(), LIMIT).await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(items[0], Ok(LlmEvent::Token("We open".into())));
    assert_eq!(
        items[1],
        Err(ProviderError::Rejected {
            provider: "openai",
            status: 500,
            message: "The server had an error".into()
        })
    );
}

#[tokio::test]
async fn openai_reset_mid_stream() {
    let chunks = sse(&[r#"{"choices":[{"index":0,"delta":{"content":"We open at"}}]}"#]);
    let plan = Plan::ok("text/event-stream", chunks).end(End::Reset);
    let mock = MockHttp::start(vec![plan]).await;
    let llm = providers(&config(&mock.url(""))).llm("openai", "").unwrap();

    let items = collect(llm.stream(request()).await.unwrap(), LIMIT).await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(items[0], Ok(LlmEvent::Token("We open at".into())));
    assert!(
        matches!(items[1], Err(ProviderError::Connect { .. })),
        "{:?}",
        items[1]
    );
}

#[tokio::test]
async fn openai_never_answering_times_out() {
    let mock = MockHttp::start(vec![Plan::silent()]).await;
    let llm = providers(&config(&mock.url(""))).llm("openai", "").unwrap();

    let error = llm.stream(request()).await.err().expect("timed out");
    assert_eq!(
        error,
        ProviderError::Timeout {
            provider: "openai",
            after: Duration::from_millis(1_500)
        }
    );
    assert_eq!(mock.requests().len(), 1, "a deadline is not retried");
}

#[tokio::test]
async fn openai_headers_then_silence_times_out() {
    // Headers arrive, then nothing: the stream is accepted and then fails on the idle
    // deadline instead of hanging.
    let plan = Plan::ok("text/event-stream", Vec::new()).end(End::Hang);
    let mock = MockHttp::start(vec![plan]).await;
    let llm = providers(&config(&mock.url(""))).llm("openai", "").unwrap();

    let items = collect(llm.stream(request()).await.unwrap(), LIMIT).await;
    assert_eq!(
        items,
        vec![Err(ProviderError::Timeout {
            provider: "openai",
            after: Duration::from_secs(1)
        })]
    );
    assert!(mock.wait_client_close(Duration::from_secs(2)).await);
}

#[tokio::test]
async fn openai_malformed_chunk_is_protocol_error() {
    let chunks = sse(&[
        r#"{"choices":[{"index":0,"delta":{"content":"Hi"}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"content": oops}}]}"#,
    ]);
    let mock = MockHttp::start(vec![Plan::ok("text/event-stream", chunks)]).await;
    let llm = providers(&config(&mock.url(""))).llm("openai", "").unwrap();

    let items = collect(llm.stream(request()).await.unwrap(), LIMIT).await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(
        matches!(items[1], Err(ProviderError::Protocol { .. })),
        "{:?}",
        items[1]
    );
}

#[tokio::test]
async fn openai_stream_end_without_done_is_error() {
    let chunks = sse(&[r#"{"choices":[{"index":0,"delta":{"content":"Hi"}}]}"#]);
    let mock = MockHttp::start(vec![Plan::ok("text/event-stream", chunks)]).await;
    let llm = providers(&config(&mock.url(""))).llm("openai", "").unwrap();

    let items = collect(llm.stream(request()).await.unwrap(), LIMIT).await;
    assert!(
        matches!(items.last(), Some(Err(ProviderError::Connect { .. }))),
        "{items:?}"
    );
}

#[tokio::test]
async fn openai_drop_closes_connection() {
    let chunks = sse(&[r#"{"choices":[{"index":0,"delta":{"content":"One"}}]}"#; 100]);
    let plan = Plan::ok("text/event-stream", chunks).chunk_interval(Duration::from_millis(50));
    let mock = MockHttp::start(vec![plan]).await;
    let llm = providers(&config(&mock.url(""))).llm("openai", "").unwrap();

    let mut stream = llm.stream(request()).await.unwrap();
    assert_eq!(stream.next().await, Some(Ok(LlmEvent::Token("One".into()))));
    drop(stream);
    assert!(mock.wait_client_close(Duration::from_secs(3)).await);
}

fn anthropic_event(name: &str, data: serde_json::Value) -> Vec<u8> {
    format!("event: {name}\ndata: {data}\n\n").into_bytes()
}

fn anthropic_reply() -> Vec<Vec<u8>> {
    vec![
        anthropic_event(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "m", "stop_reason": null, "usage": {"input_tokens": 10, "output_tokens": 1}}}),
        ),
        anthropic_event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        anthropic_event("ping", json!({"type": "ping"})),
        anthropic_event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me "}}),
        ),
        anthropic_event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "check."}}),
        ),
        anthropic_event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        anthropic_event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "hours", "input": {}}}),
        ),
        anthropic_event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"day\": \"s"}}),
        ),
        anthropic_event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "at\"}"}}),
        ),
        anthropic_event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ),
        anthropic_event(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 15}}),
        ),
        anthropic_event("message_stop", json!({"type": "message_stop"})),
    ]
}

#[tokio::test]
async fn anthropic_request_and_reply() {
    let mock = MockHttp::start(vec![Plan::ok("text/event-stream", anthropic_reply())]).await;
    let llm = providers(&config(&mock.url("")))
        .llm("anthropic", "")
        .unwrap();

    let events = ok_events(collect(llm.stream(request()).await.unwrap(), LIMIT).await);
    assert_eq!(
        events,
        vec![
            LlmEvent::Token("Let me ".into()),
            LlmEvent::Token("check.".into()),
            LlmEvent::ToolCall(ToolCall {
                id: "toolu_1".into(),
                name: "hours".into(),
                arguments: json!({"day": "sat"}),
            }),
            LlmEvent::Done,
        ]
    );

    let sent = &mock.requests()[0];
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.target, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some(KEY));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(sent.header("authorization"), None);
    let body = sent.json();
    assert_eq!(body["model"], json!("claude-3-5-haiku-latest"));
    assert_eq!(body["stream"], json!(true));
    assert_eq!(body["max_tokens"], json!(1024));
    assert_eq!(body["system"], json!("You answer for Corner Bakery."));
    assert_eq!(body["messages"][1]["role"], json!("assistant"));
    assert_eq!(
        body["messages"][2],
        json!({"role": "user", "content": [{"type": "text", "text": "When do you open?"}]})
    );
    assert_eq!(body["tools"][0]["name"], json!("hours"));
    assert_eq!(body["tools"][0]["input_schema"]["type"], json!("object"));
}

#[tokio::test]
async fn anthropic_tool_result_goes_back_as_block() {
    let mock = MockHttp::start(vec![Plan::ok("text/event-stream", anthropic_reply())]).await;
    let llm = providers(&config(&mock.url("")))
        .llm("anthropic", "")
        .unwrap();
    let mut request = request();
    request.messages.push(ChatMessage {
        role: Role::Assistant,
        content: String::new(),
        tool_calls: vec![ToolCall {
            id: "toolu_1".into(),
            name: "hours".into(),
            arguments: json!({"day": "sat"}),
        }],
        tool_call_id: String::new(),
    });
    request.messages.push(ChatMessage {
        role: Role::Tool,
        content: "8 to 2".into(),
        tool_calls: Vec::new(),
        tool_call_id: "toolu_1".into(),
    });
    collect(llm.stream(request).await.unwrap(), LIMIT).await;

    let body = mock.requests()[0].json();
    assert_eq!(
        body["messages"][3]["content"][0],
        json!({"type": "tool_use", "id": "toolu_1", "name": "hours", "input": {"day": "sat"}})
    );
    assert_eq!(
        body["messages"][4],
        json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "8 to 2"}]})
    );
}

#[tokio::test]
async fn anthropic_error_event_mid_stream() {
    let mut chunks = anthropic_reply()[..4].to_vec();
    chunks.push(anthropic_event(
        "error",
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    ));
    let mock = MockHttp::start(vec![Plan::ok("text/event-stream", chunks)]).await;
    let llm = providers(&config(&mock.url("")))
        .llm("anthropic", "")
        .unwrap();

    let items = collect(llm.stream(request()).await.unwrap(), LIMIT).await;
    assert_eq!(
        items,
        vec![
            Ok(LlmEvent::Token("Let me ".into())),
            Err(ProviderError::Rejected {
                provider: "anthropic",
                status: 529,
                message: "Overloaded".into()
            })
        ]
    );
}

#[tokio::test]
async fn anthropic_overloaded_status_is_retried() {
    let overloaded = Plan::error(
        529,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    );
    let mock = MockHttp::start(vec![
        overloaded,
        Plan::ok("text/event-stream", anthropic_reply()),
    ])
    .await;
    let llm = providers(&config(&mock.url("")))
        .llm("anthropic", "")
        .unwrap();

    let events = ok_events(collect(llm.stream(request()).await.unwrap(), LIMIT).await);
    assert_eq!(events.last(), Some(&LlmEvent::Done));
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test]
async fn anthropic_401_names_the_problem() {
    let mock = MockHttp::start(vec![Plan::error(
        401,
        r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
    )])
    .await;
    let llm = providers(&config(&mock.url("")))
        .llm("anthropic", "")
        .unwrap();

    let error = llm.stream(request()).await.err().expect("rejected");
    assert_eq!(
        error,
        ProviderError::Rejected {
            provider: "anthropic",
            status: 401,
            message: "invalid x-api-key".into()
        }
    );
}

#[tokio::test]
async fn anthropic_reset_mid_stream() {
    let plan = Plan::ok("text/event-stream", anthropic_reply()[..4].to_vec()).end(End::Reset);
    let mock = MockHttp::start(vec![plan]).await;
    let llm = providers(&config(&mock.url("")))
        .llm("anthropic", "")
        .unwrap();

    let items = collect(llm.stream(request()).await.unwrap(), LIMIT).await;
    assert_eq!(items.first(), Some(&Ok(LlmEvent::Token("Let me ".into()))));
    assert!(
        matches!(items.last(), Some(Err(ProviderError::Connect { .. }))),
        "{items:?}"
    );
}

#[tokio::test]
async fn anthropic_malformed_event_is_protocol_error() {
    let chunks = vec![
        b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":\n\n"
            .to_vec(),
    ];
    let mock = MockHttp::start(vec![Plan::ok("text/event-stream", chunks)]).await;
    let llm = providers(&config(&mock.url("")))
        .llm("anthropic", "")
        .unwrap();

    let items = collect(llm.stream(request()).await.unwrap(), LIMIT).await;
    assert!(
        matches!(items.as_slice(), [Err(ProviderError::Protocol { .. })]),
        "{items:?}"
    );
}

#[tokio::test]
async fn anthropic_never_answering_times_out() {
    let mock = MockHttp::start(vec![Plan::silent()]).await;
    let llm = providers(&config(&mock.url("")))
        .llm("anthropic", "")
        .unwrap();

    let error = llm.stream(request()).await.err().expect("timed out");
    assert!(matches!(error, ProviderError::Timeout { .. }), "{error:?}");
}

#[tokio::test]
async fn anthropic_stalled_tokens_end_on_idle_deadline() {
    // Two tokens, then the stream stalls with no bytes at all.
    let plan = Plan::ok("text/event-stream", anthropic_reply()[..5].to_vec()).end(End::Hang);
    let mock = MockHttp::start(vec![plan]).await;
    let llm = providers(&config(&mock.url("")))
        .llm("anthropic", "")
        .unwrap();

    let items = collect(llm.stream(request()).await.unwrap(), LIMIT).await;
    assert_eq!(
        items,
        vec![
            Ok(LlmEvent::Token("Let me ".into())),
            Ok(LlmEvent::Token("check.".into())),
            Err(ProviderError::Timeout {
                provider: "anthropic",
                after: Duration::from_secs(1)
            }),
        ]
    );
}
