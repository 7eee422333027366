//! The scripted agent: intents, goodbye, fallback, DTMF and tool calls, through the
//! `LlmProvider` stream the conversation loop reads.

use futures::StreamExt;
use voicegate::ai::offline::ScriptedAgent;
use voicegate::ai::provider::{ChatMessage, ChatRequest, LlmEvent, LlmProvider, Role, ToolCall};
use voicegate::ai::tools::{END_CALL, TRANSFER_CALL};
use voicegate::ai::{AgentConfig, IntentConfig};

/// Streams the agent's reply to `said` and returns the spoken text and the tool calls.
async fn reply(agent: &ScriptedAgent, said: &str) -> (String, Vec<ToolCall>) {
    let request = ChatRequest {
        system: String::new(),
        messages: vec![
            ChatMessage::text(Role::Assistant, "Hello, how can I help you?"),
            ChatMessage::text(Role::User, said),
        ],
        tools: Vec::new(),
        call_id: "test-call".to_owned(),
    };
    let mut stream = agent.stream(request).await.expect("scripted stream");
    let mut text = String::new();
    let mut tools = Vec::new();
    let mut done = false;
    while let Some(event) = stream.next().await {
        assert!(!done, "nothing follows Done");
        match event.expect("scripted event") {
            LlmEvent::Token(token) => {
                assert!(tools.is_empty(), "tokens come before tool calls");
                text.push_str(&token);
            }
            LlmEvent::ToolCall(call) => tools.push(call),
            LlmEvent::Done => done = true,
        }
    }
    assert!(done, "the stream ends with Done");
    (text, tools)
}

fn shop() -> (AgentConfig, ScriptedAgent) {
    let config = AgentConfig::default();
    let agent = ScriptedAgent::new(&config);
    (config, agent)
}

fn answer(config: &AgentConfig, name: &str) -> String {
    config
        .intents
        .iter()
        .find(|i| i.name == name)
        .map(|i| i.answer.clone())
        .expect("intent exists")
}

#[tokio::test]
async fn scripted_answers_matching_intent() {
    let (config, agent) = shop();
    let cases = [
        ("What are your opening hours on Saturday?", "hours"),
        ("WHEN DO YOU CLOSE", "hours"),
        ("Where are you located?", "address"),
        ("How much is a loaf?", "prices"),
        ("what are the prices", "prices"),
    ];
    for (said, intent) in cases {
        let (text, tools) = reply(&agent, said).await;
        assert_eq!(text, answer(&config, intent), "{said}");
        assert!(tools.is_empty(), "{said}: {tools:?}");
    }
}

#[tokio::test]
async fn scripted_tolerates_plural_and_ing() {
    let (config, agent) = shop();
    // "closing" for "close", "weekends" for "weekend".
    let (text, _) = reply(&agent, "are you closing on weekends").await;
    assert_eq!(text, answer(&config, "hours"));
}

#[tokio::test]
async fn scripted_matches_whole_words_only() {
    let (config, agent) = shop();
    // "reopened" and "whereabouts" contain keywords but are other words.
    let (text, _) = reply(&agent, "reopened whereabouts").await;
    assert_eq!(text, config.fallback);
}

#[tokio::test]
async fn scripted_most_matches_win() {
    let (config, agent) = shop();
    // One price keyword against three hours keywords.
    let (text, _) = reply(&agent, "price of opening hours on sunday").await;
    assert_eq!(text, answer(&config, "hours"));
}

#[tokio::test]
async fn scripted_goodbye_ends_call() {
    let (config, agent) = shop();
    for said in ["OK, goodbye!", "that's all, thanks", "Bye"] {
        let (text, tools) = reply(&agent, said).await;
        assert_eq!(text, config.goodbye, "{said}");
        assert_eq!(tools.len(), 1, "{said}");
        assert_eq!(tools[0].name, END_CALL);
    }
}

#[tokio::test]
async fn scripted_goodbye_beats_intents() {
    let (config, agent) = shop();
    let (text, tools) = reply(&agent, "thanks for the opening hours, bye").await;
    assert_eq!(text, config.goodbye);
    assert_eq!(tools[0].name, END_CALL);
}

#[tokio::test]
async fn scripted_fallback_without_match() {
    let (config, agent) = shop();
    let (text, tools) = reply(&agent, "Do you sell bicycles?").await;
    assert_eq!(text, config.fallback);
    assert!(tools.is_empty());
}

#[tokio::test]
async fn scripted_transfer_action() {
    let config = AgentConfig {
        transfer_target: "sip:desk@example.com".to_owned(),
        ..AgentConfig::default()
    };
    let agent = ScriptedAgent::new(&config);
    let (text, tools) = reply(&agent, "Can I speak to a human?").await;
    assert_eq!(text, answer(&config, "human"));
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0].name, TRANSFER_CALL);
    assert_eq!(tools[0].arguments["target"], "sip:desk@example.com");
}

#[tokio::test]
async fn scripted_tenant_intents_and_dtmf() {
    let config = AgentConfig {
        fallback: "Press 1 for sales or 2 to end the call.".to_owned(),
        goodbye_keywords: Vec::new(),
        intents: vec![
            IntentConfig {
                name: "sales".to_owned(),
                keywords: vec!["1".to_owned(), "sales".to_owned()],
                answer: "Sales is open until five.".to_owned(),
                action: String::new(),
            },
            IntentConfig {
                name: "quit".to_owned(),
                keywords: vec!["2".to_owned()],
                answer: "Goodbye.".to_owned(),
                action: "hangup".to_owned(),
            },
        ],
        ..AgentConfig::default()
    };
    let agent = ScriptedAgent::new(&config);

    let (text, tools) = reply(&agent, "[dtmf 1]").await;
    assert_eq!(text, "Sales is open until five.");
    assert!(tools.is_empty());

    let (text, tools) = reply(&agent, "[dtmf 2]").await;
    assert_eq!(text, "Goodbye.");
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0].name, END_CALL);

    // The server's default intents are not used by this tenant.
    let (text, _) = reply(&agent, "opening hours").await;
    assert_eq!(text, config.fallback);
}

#[tokio::test]
async fn scripted_streams_word_tokens() {
    let (config, agent) = shop();
    let request = ChatRequest {
        messages: vec![ChatMessage::text(Role::User, "address please")],
        ..ChatRequest::default()
    };
    let events: Vec<LlmEvent> = agent
        .stream(request)
        .await
        .expect("stream")
        .map(|e| e.expect("event"))
        .collect()
        .await;
    let words = answer(&config, "address").split_whitespace().count();
    assert_eq!(events.len(), words + 1);
    assert_eq!(events.last(), Some(&LlmEvent::Done));
}

#[tokio::test]
async fn scripted_greets_without_user_message() {
    let (config, agent) = shop();
    let request = ChatRequest::default();
    let mut stream = agent.stream(request).await.expect("stream");
    let mut text = String::new();
    while let Some(Ok(LlmEvent::Token(token))) = stream.next().await {
        text.push_str(&token);
    }
    assert_eq!(text, config.greeting);
}
