//! Deepgram live streaming: the request, transcripts, keepalive on hold, and reconnecting
//! with replay after drops.

use std::time::Duration;

use tokio::sync::mpsc;
use voicegate::ai::ProvidersConfig;
use voicegate::ai::provider::{ProviderError, SttEvent, SttInput, SttOptions, SttSession};

use crate::support::deepgram::{Fault, MockDeepgram, speak};
use crate::support::{KEY, assert_no_key, collect_events, config, final_text, providers};

const LIMIT: Duration = Duration::from_secs(15);
const ACCOUNT: &str = "my account number is four four two one nine zero";

fn deepgram_config(mock: &MockDeepgram) -> ProvidersConfig {
    ProvidersConfig {
        deepgram_url: mock.url(),
        ..config("http://127.0.0.1:9")
    }
}

fn options() -> SttOptions {
    SttOptions {
        language: "en-US".into(),
        keywords: vec!["Corner Bakery".into()],
        call_id: "call-7".into(),
    }
}

fn start(config: &ProvidersConfig) -> SttSession {
    providers(config)
        .stt("deepgram", "")
        .expect("deepgram configured")
        .start(options())
}

async fn say(input: &mpsc::Sender<SttInput>, words: &str) {
    for frame in speak(words).chunks(320) {
        input
            .send(SttInput::Audio(frame.to_vec()))
            .await
            .expect("session accepts audio");
    }
}

/// Reads events until a final text containing `word` arrives.
async fn until_final_with(events: &mut mpsc::Receiver<SttEvent>, word: &str) -> Vec<SttEvent> {
    let read = async {
        let mut seen = Vec::new();
        while let Some(event) = events.recv().await {
            let done = matches!(&event, SttEvent::Final(text) if text.contains(word));
            let failed = matches!(event, SttEvent::Failed(_));
            seen.push(event);
            if done || failed {
                break;
            }
        }
        seen
    };
    tokio::time::timeout(LIMIT, read)
        .await
        .unwrap_or_else(|_| panic!("no final text with {word} in time"))
}

/// Ends the session and returns the events that follow, until the session task ends.
async fn finish(mut session: SttSession) -> Vec<SttEvent> {
    drop(session.input);
    collect_events(&mut session.events, LIMIT).await
}

#[tokio::test]
async fn request_and_transcripts() {
    let mock = MockDeepgram::start(Vec::new(), None).await;
    let mut session = start(&deepgram_config(&mock));

    say(&session.input, "hello hold on please").await;
    let mut events = until_final_with(&mut session.events, "please").await;
    session.input.send(SttInput::Finalize).await.unwrap();
    events.extend(finish(session).await);

    assert_eq!(
        events,
        vec![
            SttEvent::Partial("hello".into()),
            SttEvent::Partial("hello hold".into()),
            SttEvent::Final("hello hold on".into()),
            SttEvent::Partial("please".into()),
            SttEvent::Final("please".into()),
            SttEvent::Final(String::new()),
        ]
    );

    let connections = mock.connections();
    assert_eq!(connections.len(), 1);
    let connection = &connections[0];
    let (path, query) = connection.target.split_once('?').expect("query parameters");
    assert_eq!(path, "/v1/listen");
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    for (name, value) in [
        ("model", "nova-2-phonecall"),
        ("encoding", "linear16"),
        ("sample_rate", "16000"),
        ("channels", "1"),
        ("interim_results", "true"),
        ("endpointing", "300"),
        ("utterance_end_ms", "1000"),
        ("smart_format", "true"),
        ("language", "en-US"),
        ("keywords", "Corner Bakery"),
    ] {
        assert!(
            params.contains(&(name.to_string(), value.to_string())),
            "{name}={value} missing from {params:?}"
        );
    }
    assert_eq!(
        connection.header("authorization"),
        Some(format!("Token {KEY}").as_str())
    );
    assert_eq!(connection.samples, speak("hello hold on please").len());
    assert_eq!(connection.count_text(r#"{"type":"Finalize"}"#), 1);
    assert_eq!(connection.count_text(r#"{"type":"CloseStream"}"#), 1);
    assert_eq!(connection.ended, "closed after CloseStream");
}

#[tokio::test]
async fn close_1011_mid_sentence_loses_no_words() {
    // The server closes with 1011 in the middle of the first "four" (1.35 s).
    let fault = Fault {
        close_after: Some((21_600, 1011)),
        ..Fault::default()
    };
    let mock = MockDeepgram::start(vec![fault], None).await;
    let mut session = start(&deepgram_config(&mock));

    say(&session.input, ACCOUNT).await;
    let mut events = until_final_with(&mut session.events, "zero").await;
    events.extend(finish(session).await);

    assert_eq!(final_text(&events), ACCOUNT, "{events:?}");
    assert!(events.contains(&SttEvent::Reconnecting), "{events:?}");
    assert!(
        !events.iter().any(|e| matches!(e, SttEvent::Failed(_))),
        "{events:?}"
    );
    let connections = mock.connections();
    assert_eq!(connections.len(), 2);
    assert_eq!(connections[0].ended, "closed with 1011");
    assert_eq!(connections[0].target, connections[1].target);
}

#[tokio::test]
async fn tcp_reset_mid_sentence_loses_no_words() {
    let fault = Fault {
        reset_after: Some(21_600),
        ..Fault::default()
    };
    let mock = MockDeepgram::start(vec![fault], None).await;
    let mut session = start(&deepgram_config(&mock));

    say(&session.input, ACCOUNT).await;
    let mut events = until_final_with(&mut session.events, "zero").await;
    events.extend(finish(session).await);

    assert_eq!(final_text(&events), ACCOUNT, "{events:?}");
    assert!(events.contains(&SttEvent::Reconnecting), "{events:?}");
    assert_eq!(mock.connections().len(), 2);
}

#[tokio::test]
async fn keepalive_holds_connection_on_hold() {
    let mock = MockDeepgram::start(Vec::new(), Some(Duration::from_millis(400))).await;
    let mut config = deepgram_config(&mock);
    config.deepgram_keepalive_ms = 100;
    let mut session = start(&config);

    say(&session.input, "hello").await;
    let mut events = until_final_with(&mut session.events, "hello").await;
    session.input.send(SttInput::Pause).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    session.input.send(SttInput::Resume).await.unwrap();
    say(&session.input, "thanks").await;
    events.extend(until_final_with(&mut session.events, "thanks").await);
    events.extend(finish(session).await);

    assert_eq!(final_text(&events), "hello thanks");
    assert!(!events.contains(&SttEvent::Reconnecting), "{events:?}");
    let connections = mock.connections();
    assert_eq!(
        connections.len(),
        1,
        "the idle server never closed the socket"
    );
    let keepalives = connections[0].count_text(r#"{"type":"KeepAlive"}"#);
    assert!(keepalives >= 5, "{keepalives} KeepAlive messages in 1.5 s");
}

#[tokio::test]
async fn idle_close_on_hold_reconnects_quietly() {
    // KeepAlive every 2 s cannot beat a 400 ms idle limit, so the server closes the socket.
    let mock = MockDeepgram::start(Vec::new(), Some(Duration::from_millis(400))).await;
    let mut config = deepgram_config(&mock);
    config.deepgram_keepalive_ms = 2_000;
    let mut session = start(&config);

    say(&session.input, "hello").await;
    let mut events = until_final_with(&mut session.events, "hello").await;
    session.input.send(SttInput::Pause).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(mock.connections()[0].ended, "closed idle with 1011");
    session.input.send(SttInput::Resume).await.unwrap();
    say(&session.input, "thanks").await;
    events.extend(until_final_with(&mut session.events, "thanks").await);
    events.extend(finish(session).await);

    assert_eq!(final_text(&events), "hello thanks");
    assert!(!events.contains(&SttEvent::Reconnecting), "{events:?}");
    assert_eq!(mock.connections().len(), 2);
}

#[tokio::test]
async fn three_failed_reconnects_fail_the_session() {
    let refuse = Fault {
        reject: Some(503),
        ..Fault::default()
    };
    let faults = vec![
        Fault {
            close_after: Some((16_000, 1011)),
            ..Fault::default()
        },
        refuse.clone(),
        refuse.clone(),
        refuse,
    ];
    let mock = MockDeepgram::start(faults, None).await;
    let mut session = start(&deepgram_config(&mock));

    say(&session.input, ACCOUNT).await;
    let events = collect_events(&mut session.events, LIMIT).await;
    let Some(SttEvent::Failed(error)) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(
        error,
        &ProviderError::Rejected {
            provider: "deepgram",
            status: 503,
            message: "refused with 503".into()
        }
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| **e == SttEvent::Reconnecting)
            .count(),
        1
    );
    assert_eq!(mock.connections().len(), 4);
}

#[tokio::test]
async fn rejected_key_fails_at_once() {
    let fault = Fault {
        reject: Some(401),
        ..Fault::default()
    };
    let mock = MockDeepgram::start(vec![fault], None).await;
    let mut session = start(&deepgram_config(&mock));

    let events = collect_events(&mut session.events, LIMIT).await;
    let [SttEvent::Failed(error)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert!(
        matches!(error, ProviderError::Rejected { status: 401, .. }),
        "{error:?}"
    );
    assert_no_key(error);
    assert_eq!(mock.connections().len(), 1);
}

#[tokio::test]
async fn garbage_frames_fail_with_protocol_error() {
    let garbage = Fault {
        garbage: true,
        ..Fault::default()
    };
    let mock = MockDeepgram::start(vec![garbage.clone(), garbage.clone(), garbage], None).await;
    let mut session = start(&deepgram_config(&mock));
    say(&session.input, "hello").await;

    let events = collect_events(&mut session.events, LIMIT).await;
    assert!(
        matches!(
            events.last(),
            Some(SttEvent::Failed(ProviderError::Protocol { .. }))
        ),
        "{events:?}"
    );
    assert_eq!(mock.connections().len(), 3);
}

#[tokio::test]
async fn unreachable_server_fails_after_retries() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let config = ProvidersConfig {
        deepgram_url: format!("ws://127.0.0.1:{port}/v1/listen"),
        ..config("http://127.0.0.1:9")
    };
    let mut session = start(&config);

    let events = collect_events(&mut session.events, LIMIT).await;
    assert!(
        matches!(
            events.as_slice(),
            [SttEvent::Failed(ProviderError::Connect { .. })]
        ),
        "{events:?}"
    );
}

#[tokio::test]
async fn slow_upgrade_buffers_audio() {
    let fault = Fault {
        upgrade_delay: Some(Duration::from_millis(300)),
        ..Fault::default()
    };
    let mock = MockDeepgram::start(vec![fault], None).await;
    let mut session = start(&deepgram_config(&mock));

    // All of this is said before the server completes the upgrade.
    say(&session.input, "hello hold on please").await;
    let mut events = until_final_with(&mut session.events, "please").await;
    events.extend(finish(session).await);

    assert_eq!(final_text(&events), "hello hold on please");
    assert_eq!(mock.connections().len(), 1);
}

#[tokio::test]
async fn error_message_then_close_reconnects() {
    let fault = Fault {
        close_after: Some((21_600, 1011)),
        error_message: Some("internal server error".into()),
        ..Fault::default()
    };
    let mock = MockDeepgram::start(vec![fault], None).await;
    let mut session = start(&deepgram_config(&mock));

    say(&session.input, ACCOUNT).await;
    let mut events = until_final_with(&mut session.events, "zero").await;
    events.extend(finish(session).await);

    assert_eq!(final_text(&events), ACCOUNT, "{events:?}");
    assert!(events.contains(&SttEvent::Reconnecting), "{events:?}");
    assert_eq!(mock.connections().len(), 2);
}

#[tokio::test]
async fn upgrade_never_answered_times_out() {
    let hang = Fault {
        hang_upgrade: true,
        ..Fault::default()
    };
    let mock = MockDeepgram::start(vec![hang.clone(), hang.clone(), hang], None).await;
    let mut config = deepgram_config(&mock);
    config.first_byte_timeout_ms = 100;
    let mut session = start(&config);

    let events = collect_events(&mut session.events, LIMIT).await;
    assert_eq!(
        events,
        vec![SttEvent::Failed(ProviderError::Timeout {
            provider: "deepgram",
            after: Duration::from_millis(1_100)
        })]
    );
    assert_eq!(mock.connections().len(), 3);
}
