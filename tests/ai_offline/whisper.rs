//! Whisper speech-to-text through the supervised helper process.

use std::time::Instant;

use voicegate::ai::offline::{HelperSettings, WhisperHelper, WhisperStt};
use voicegate::ai::provider::{ProviderError, SttEvent};
use voicegate::media::codec::{linear_to_ulaw, ulaw_to_linear};
use voicegate::media::resample::convert_clip;

use crate::support::{QUESTION, final_text, helper, padded, speak, transcribe};

/// Sends 16 kHz speech through G.711 mu-law at 8 kHz and back, as a phone call carries it.
fn through_mulaw(pcm: &[i16]) -> Vec<i16> {
    let narrow = convert_clip(pcm, 16_000, 8_000).expect("16 kHz to 8 kHz");
    let decoded: Vec<i16> = narrow
        .iter()
        .map(|&s| ulaw_to_linear(linear_to_ulaw(s)))
        .collect();
    convert_clip(&decoded, 8_000, 16_000).expect("8 kHz to 16 kHz")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whisper_transcribes_espeak_question() {
    let helper = helper();
    let started = Instant::now();
    helper.warm_up().await.expect("helper loads the model");
    println!("whisper model load: {} ms", started.elapsed().as_millis());
    let stt = WhisperStt::new(helper.clone(), 5);
    let speech = padded(&speak(QUESTION).await, 0.4);

    for (label, pcm) in [
        ("16 kHz", speech.clone()),
        ("mu-law 8 kHz", through_mulaw(&speech)),
    ] {
        let started = Instant::now();
        let events = transcribe(&stt, &pcm).await;
        let elapsed = started.elapsed();
        let text = final_text(&events);
        println!(
            "whisper {label}: {} ms for {:.1} s of audio: {text:?}",
            elapsed.as_millis(),
            pcm.len() as f64 / 16_000.0
        );
        assert!(text.contains("hour"), "{label}: {text:?}");
        assert!(text.contains("saturday"), "{label}: {text:?}");
    }
    helper.shutdown().await;
    assert_eq!(helper.status().pid, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whisper_skips_silence() {
    // No helper is running and none starts: silence never reaches Whisper.
    let helper = helper();
    let stt = WhisperStt::new(helper.clone(), 5);
    let events = transcribe(&stt, &vec![0; 32_000]).await;
    assert_eq!(events, vec![SttEvent::Final(String::new())]);
    assert_eq!(helper.status().starts, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whisper_restarts_after_sigkill() {
    let helper = helper();
    helper.warm_up().await.expect("helper loads the model");
    let first = helper.status();
    let pid = first.pid.expect("helper runs") as libc::pid_t;

    // A long utterance is still being decoded when the helper dies.
    let speech = speak(QUESTION).await;
    let long = speech.repeat(6);
    let pending = tokio::spawn({
        let helper = helper.clone();
        async move { helper.transcribe(long, 5, String::new()).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // SAFETY: kill(2) with a pid this test's helper started; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let result = pending.await.expect("transcription task");
    assert!(
        matches!(result, Err(ProviderError::Connect { .. })),
        "{result:?}"
    );

    // The next utterance waits for the restarted helper and is transcribed.
    let stt = WhisperStt::new(helper.clone(), 5);
    let events = transcribe(&stt, &padded(&speech, 0.4)).await;
    let text = final_text(&events);
    assert!(text.contains("saturday"), "{text:?}");
    let after = helper.status();
    assert_eq!(after.starts, first.starts + 1);
    assert_ne!(after.pid, Some(pid as u32));
    helper.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whisper_session_retries_across_restart() {
    let helper = helper();
    helper.warm_up().await.expect("helper loads the model");
    let pid = helper.status().pid.expect("helper runs") as libc::pid_t;
    let stt = WhisperStt::new(helper.clone(), 5);
    let speech = padded(&speak(QUESTION).await.repeat(6), 0.4);

    let session = tokio::spawn(async move { transcribe(&stt, &speech).await });
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    // SAFETY: kill(2) with a pid this test's helper started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);

    let events = session.await.expect("session task");
    assert_eq!(events.first(), Some(&SttEvent::Reconnecting), "{events:?}");
    let text = final_text(&events);
    assert!(text.contains("saturday"), "{text:?}");
    helper.shutdown().await;
}

#[tokio::test]
async fn whisper_fails_after_shutdown() {
    let helper = helper();
    helper.shutdown().await;
    let result = helper.transcribe(vec![0; 1_600], 5, String::new()).await;
    assert!(
        matches!(result, Err(ProviderError::Connect { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn whisper_missing_python_fails_warm_up() {
    let helper = WhisperHelper::new(HelperSettings {
        python: "/nonexistent/python3".to_owned(),
        model: String::new(),
    });
    let result = helper.warm_up().await;
    let message = result.expect_err("no interpreter").to_string();
    assert!(message.contains("ai.whisper_python"), "{message}");
    assert_eq!(helper.status().failed_starts, 1);
    helper.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whisper_missing_model_fails_warm_up() {
    let helper = WhisperHelper::new(HelperSettings {
        python: "python3".to_owned(),
        model: "/nonexistent/whisper-model".to_owned(),
    });
    let result = helper.warm_up().await;
    assert!(
        matches!(result, Err(ProviderError::Connect { .. })),
        "{result:?}"
    );
    let status = helper.status();
    assert!(!status.ready);
    assert_eq!(status.starts, 1);
    helper.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whisper_pause_keeps_buffer() {
    use voicegate::ai::provider::{SttInput, SttOptions, SttProvider};

    let helper = helper();
    let stt = WhisperStt::new(helper.clone(), 5);
    let speech = padded(&speak(QUESTION).await, 0.4);
    let (before, after) = speech.split_at(speech.len() / 2);
    let mut session = stt.start(SttOptions {
        keywords: crate::support::shop_keywords(),
        ..SttOptions::default()
    });
    let mut inputs = vec![SttInput::Audio(before.to_vec()), SttInput::Pause];
    inputs.extend([SttInput::Resume, SttInput::Audio(after.to_vec())]);
    inputs.push(SttInput::Finalize);
    for input in inputs {
        session.input.send(input).await.expect("session open");
    }
    let event = tokio::time::timeout(std::time::Duration::from_secs(120), session.events.recv())
        .await
        .expect("a final within 120 s");
    let text = match event {
        Some(SttEvent::Final(text)) => text.to_lowercase(),
        other => panic!("expected a final, got {other:?}"),
    };
    assert!(text.contains("saturday"), "{text:?}");
    helper.shutdown().await;
}

#[tokio::test]
async fn whisper_request_fails_without_helper() {
    let helper = WhisperHelper::new(HelperSettings {
        python: "/nonexistent/python3".to_owned(),
        model: String::new(),
    });
    // The request fails once the start fails, instead of waiting for the request deadline.
    let result = helper.transcribe(vec![0; 1_600], 5, String::new()).await;
    assert!(
        matches!(result, Err(ProviderError::Connect { .. })),
        "{result:?}"
    );
    helper.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whisper_matches_concurrent_replies() {
    let helper = helper();
    helper.warm_up().await.expect("helper loads the model");
    let prompt = voicegate::ai::offline::whisper::initial_prompt(&crate::support::shop_keywords());
    let cases = [
        (QUESTION, "saturday"),
        ("Where is your shop located?", "located"),
        ("Are you open on Sunday?", "sunday"),
    ];
    let mut tasks = Vec::new();
    for (sentence, _) in cases {
        let speech = padded(&speak(sentence).await, 0.4);
        let helper = helper.clone();
        let prompt = prompt.clone();
        tasks.push(tokio::spawn(async move {
            helper.transcribe(speech, 5, prompt).await
        }));
    }
    for (task, (sentence, word)) in tasks.into_iter().zip(cases) {
        let text = task
            .await
            .expect("task")
            .expect("transcription")
            .to_lowercase();
        assert!(text.contains(word), "{sentence:?} came back as {text:?}");
    }
    helper.shutdown().await;
}
