//! OpenAI-compatible transcription over HTTP.

use std::io::Cursor;
use std::time::Duration;

use voicegate::ai::provider::{ProviderError, SttEvent, SttInput, SttOptions};

use crate::support::http::{MockHttp, Plan, Recorded};
use crate::support::{KEY, assert_no_key, collect_events, config, providers, tone};

const LIMIT: Duration = Duration::from_secs(10);

fn options() -> SttOptions {
    SttOptions {
        language: "en-US".into(),
        keywords: vec!["Corner Bakery".into(), "croissant".into()],
        call_id: "call-1".into(),
    }
}

/// One multipart field of a request.
struct Field {
    name: String,
    file_name: Option<String>,
    content_type: Option<String>,
    data: Vec<u8>,
}

/// Multipart fields of a request, parsed with `multer`.
async fn fields(request: &Recorded) -> Vec<Field> {
    let content_type = request.header("content-type").expect("content type");
    let boundary = multer::parse_boundary(content_type).expect("multipart boundary");
    let body = bytes::Bytes::from(request.body.clone());
    let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut out = Vec::new();
    while let Some(field) = multipart.next_field().await.expect("valid multipart") {
        out.push(Field {
            name: field.name().unwrap_or_default().to_string(),
            file_name: field.file_name().map(str::to_string),
            content_type: field.content_type().map(|m| m.to_string()),
            data: field.bytes().await.expect("field bytes").to_vec(),
        });
    }
    out
}

fn text_field<'a>(fields: &'a [Field], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|f| f.name == name)
        .and_then(|f| std::str::from_utf8(&f.data).ok())
}

/// Decodes the WAV file in the `file` field and checks its format.
fn wav_samples(fields: &[Field]) -> Vec<i16> {
    let file = fields
        .iter()
        .find(|f| f.name == "file")
        .expect("file field");
    let wav = hound::WavReader::new(Cursor::new(file.data.clone())).expect("valid WAV");
    assert_eq!(wav.spec().sample_rate, 16_000);
    assert_eq!(wav.spec().channels, 1);
    assert_eq!(wav.spec().bits_per_sample, 16);
    wav.into_samples().map(Result::unwrap).collect()
}

#[tokio::test]
async fn transcribes_utterance_on_finalize() {
    let answer = br#"{"text":" We open at seven. "}"#.to_vec();
    let mock = MockHttp::start(vec![Plan::ok("application/json", vec![answer])]).await;
    let stt = providers(&config(&mock.url(""))).stt("openai", "").unwrap();
    let mut session = stt.start(options());

    let audio = tone(16_000, 300.0, 16_000);
    for frame in audio.chunks(320) {
        session
            .input
            .send(SttInput::Audio(frame.to_vec()))
            .await
            .unwrap();
    }
    session.input.send(SttInput::Finalize).await.unwrap();
    drop(session.input);
    let events = collect_events(&mut session.events, LIMIT).await;
    assert_eq!(events, vec![SttEvent::Final("We open at seven.".into())]);

    let requests = mock.requests();
    assert_eq!(requests.len(), 1);
    let sent = &requests[0];
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.target, "/v1/audio/transcriptions");
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    let fields = fields(sent).await;
    assert_eq!(text_field(&fields, "model"), Some("whisper-1"));
    assert_eq!(text_field(&fields, "response_format"), Some("json"));
    assert_eq!(text_field(&fields, "language"), Some("en"));
    assert_eq!(
        text_field(&fields, "prompt"),
        Some("Corner Bakery, croissant")
    );
    let file = fields
        .iter()
        .find(|f| f.name == "file")
        .expect("file field");
    assert_eq!(file.file_name.as_deref(), Some("audio.wav"));
    assert_eq!(file.content_type.as_deref(), Some("audio/wav"));
    assert_eq!(wav_samples(&fields), audio);
}

#[tokio::test]
async fn each_finalize_posts_its_own_utterance() {
    // The longer first utterance gets the slower response.
    let mock = MockHttp::start_with(|request| {
        if request.body.len() > 5_000 {
            Plan::ok("application/json", vec![br#"{"text":"first"}"#.to_vec()])
                .headers_after(Duration::from_millis(300))
        } else {
            Plan::ok("application/json", vec![br#"{"text":"second"}"#.to_vec()])
        }
    })
    .await;
    let stt = providers(&config(&mock.url(""))).stt("openai", "").unwrap();
    let mut session = stt.start(options());

    session
        .input
        .send(SttInput::Audio(vec![100; 3_200]))
        .await
        .unwrap();
    session.input.send(SttInput::Finalize).await.unwrap();
    session
        .input
        .send(SttInput::Audio(vec![200; 1_600]))
        .await
        .unwrap();
    session.input.send(SttInput::Finalize).await.unwrap();
    drop(session.input);
    let events = collect_events(&mut session.events, LIMIT).await;
    assert_eq!(
        events,
        vec![
            SttEvent::Final("first".into()),
            SttEvent::Final("second".into())
        ],
        "results come in utterance order although the first answer is slower"
    );
    let requests = mock.requests();
    assert_eq!(requests.len(), 2);
    let mut sizes = Vec::new();
    for request in &requests {
        sizes.push(wav_samples(&fields(request).await).len());
    }
    sizes.sort();
    assert_eq!(sizes, vec![1_600, 3_200]);
}

#[tokio::test]
async fn empty_utterance_gives_empty_final_without_request() {
    let mock = MockHttp::start(vec![Plan::ok("application/json", vec![b"{}".to_vec()])]).await;
    let stt = providers(&config(&mock.url(""))).stt("openai", "").unwrap();
    let mut session = stt.start(options());
    session.input.send(SttInput::Finalize).await.unwrap();
    drop(session.input);
    let events = collect_events(&mut session.events, LIMIT).await;
    assert_eq!(events, vec![SttEvent::Final(String::new())]);
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn audio_while_paused_is_ignored() {
    let mock = MockHttp::start(vec![Plan::ok(
        "application/json",
        vec![br#"{"text":"x"}"#.to_vec()],
    )])
    .await;
    let stt = providers(&config(&mock.url(""))).stt("openai", "").unwrap();
    let mut session = stt.start(options());
    session
        .input
        .send(SttInput::Audio(vec![1; 320]))
        .await
        .unwrap();
    session.input.send(SttInput::Pause).await.unwrap();
    session
        .input
        .send(SttInput::Audio(vec![2; 320]))
        .await
        .unwrap();
    session.input.send(SttInput::Resume).await.unwrap();
    session
        .input
        .send(SttInput::Audio(vec![3; 320]))
        .await
        .unwrap();
    session.input.send(SttInput::Finalize).await.unwrap();
    drop(session.input);
    collect_events(&mut session.events, LIMIT).await;
    let samples = wav_samples(&fields(&mock.requests()[0]).await);
    assert_eq!(samples.len(), 640);
    assert!(samples.iter().all(|&s| s != 2));
}

#[tokio::test]
async fn server_error_is_retried() {
    let mock = MockHttp::start(vec![
        Plan::error(503, r#"{"error":{"message":"overloaded"}}"#),
        Plan::ok(
            "application/json",
            vec![br#"{"text":"after retry"}"#.to_vec()],
        ),
    ])
    .await;
    let stt = providers(&config(&mock.url(""))).stt("openai", "").unwrap();
    let mut session = stt.start(options());
    session
        .input
        .send(SttInput::Audio(vec![5; 1_600]))
        .await
        .unwrap();
    session.input.send(SttInput::Finalize).await.unwrap();
    drop(session.input);
    let events = collect_events(&mut session.events, LIMIT).await;
    assert_eq!(events, vec![SttEvent::Final("after retry".into())]);
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test]
async fn bad_request_fails_the_session() {
    let body = format!(r#"{{"error":{{"message":"Invalid file format for key {KEY}."}}}}"#);
    let mock = MockHttp::start(vec![Plan::error(400, &body)]).await;
    let stt = providers(&config(&mock.url(""))).stt("openai", "").unwrap();
    let mut session = stt.start(options());
    session
        .input
        .send(SttInput::Audio(vec![5; 1_600]))
        .await
        .unwrap();
    session.input.send(SttInput::Finalize).await.unwrap();
    let events = collect_events(&mut session.events, LIMIT).await;
    let [SttEvent::Failed(error)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert!(
        matches!(error, ProviderError::Rejected { status: 400, .. }),
        "{error:?}"
    );
    assert_no_key(error);
    assert_eq!(mock.requests().len(), 1);
    assert!(
        session.events.recv().await.is_none(),
        "no events after Failed"
    );
}

#[tokio::test]
async fn slow_server_times_out() {
    let mock = MockHttp::start(vec![Plan::silent()]).await;
    let stt = providers(&config(&mock.url(""))).stt("openai", "").unwrap();
    let mut session = stt.start(options());
    session
        .input
        .send(SttInput::Audio(vec![5; 1_600]))
        .await
        .unwrap();
    session.input.send(SttInput::Finalize).await.unwrap();
    let events = collect_events(&mut session.events, LIMIT).await;
    assert_eq!(
        events,
        vec![SttEvent::Failed(ProviderError::Timeout {
            provider: "openai-stt",
            after: Duration::from_secs(2)
        })]
    );
}

#[tokio::test]
async fn malformed_answer_is_protocol_error() {
    let mock = MockHttp::start(vec![Plan::ok(
        "text/html",
        vec![b"<html>oops</html>".to_vec()],
    )])
    .await;
    let stt = providers(&config(&mock.url(""))).stt("openai", "").unwrap();
    let mut session = stt.start(options());
    session
        .input
        .send(SttInput::Audio(vec![5; 1_600]))
        .await
        .unwrap();
    session.input.send(SttInput::Finalize).await.unwrap();
    let events = collect_events(&mut session.events, LIMIT).await;
    assert!(
        matches!(
            events.as_slice(),
            [SttEvent::Failed(ProviderError::Protocol { .. })]
        ),
        "{events:?}"
    );
}
