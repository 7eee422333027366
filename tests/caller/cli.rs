//! `voicegate call` and `voicegate loadtest` run as a user runs them, against SIPp.

use super::peer::{Answer, caller_wav, json, start_sipp, transcribe, voicegate};

#[test]
fn call_plays_records_and_reports() {
    let sipp = start_sipp(15_301, Answer::Speech("PCMU"), false);
    let dir = tempfile::tempdir().unwrap();
    let play = caller_wav(dir.path());
    let record = dir.path().join("heard.wav");
    let uri = format!("sip:+15551230000@127.0.0.1:{}", sipp.port);
    let output = voicegate(&[
        "call",
        &uri,
        "--play",
        play.to_str().unwrap(),
        "--record",
        record.to_str().unwrap(),
        "--reply-timeout",
        "1",
        "--json",
    ]);
    let report = json(&output);
    assert!(
        output.status.success(),
        "exit status {:?}: {report}",
        output.status
    );
    assert_eq!(report["status"], 200);
    assert_eq!(report["answered"], true);
    assert_eq!(report["codec"], "PCMU");
    assert_eq!(report["ended_by"], "caller");
    assert!(report["call_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(report["setup_ms"].as_f64().is_some_and(|ms| ms > 0.0));
    // The greeting is about 4 s of speech at 50 packets a second.
    assert!(
        report["rtp"]["received"].as_u64().is_some_and(|n| n > 100),
        "{report}"
    );
    assert_eq!(report["rtp"]["lost"], 0);
    let first_audio = report["first_audio_ms"].as_f64().expect("greeting heard");
    assert!(first_audio < 1_000.0, "{report}");
    // The caller spoke once, after the greeting, and SIPp did not answer it.
    let turns = report["turns"].as_array().expect("turns");
    assert_eq!(turns.len(), 1, "{report}");
    assert!(
        turns[0]["speech_end_ms"]
            .as_f64()
            .is_some_and(|ms| ms > first_audio)
    );
    assert!(turns[0]["reply_ms"].is_null());
    assert!(report["barge_in"].is_null());

    let heard = transcribe(&record);
    for word in ["calling", "help"] {
        assert!(heard.contains(word), "recording transcribed as {heard:?}");
    }
}

#[test]
fn call_with_pcma_and_summary() {
    let sipp = start_sipp(15_311, Answer::Speech("PCMA"), false);
    let uri = format!("127.0.0.1:{}", sipp.port);
    let output = voicegate(&["call", &uri, "--codec", "pcma", "--hangup-after", "2"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("200 OK"), "{stdout}");
    assert!(stdout.contains("(PCMA)"), "{stdout}");
    assert!(stdout.contains("ended by caller"), "{stdout}");
}

#[test]
fn call_over_tcp() {
    let sipp = start_sipp(15_321, Answer::Speech("PCMU"), true);
    let uri = format!("sip:100@127.0.0.1:{}", sipp.port);
    let output = voicegate(&[
        "call",
        &uri,
        "--transport",
        "tcp",
        "--hangup-after",
        "1.5",
        "--json",
    ]);
    let report = json(&output);
    assert!(output.status.success(), "{report}");
    assert_eq!(report["status"], 200);
    assert!(
        report["rtp"]["received"].as_u64().is_some_and(|n| n > 0),
        "{report}"
    );
}

#[test]
fn rejected_call_exits_1_with_status() {
    let sipp = start_sipp(15_331, Answer::Reject(486, "Busy Here"), false);
    let uri = format!("sip:100@127.0.0.1:{}", sipp.port);
    let output = voicegate(&["call", &uri, "--json"]);
    let report = json(&output);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(report["status"], 486);
    assert_eq!(report["answered"], false);
    assert!(report["setup_ms"].is_null());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("486 Busy Here"), "{stderr}");
}

#[test]
fn loadtest_twenty_calls_without_failure() {
    let sipp = start_sipp(15_341, Answer::Speech("PCMU"), false);
    let uri = format!("sip:100@127.0.0.1:{}", sipp.port);
    let output = voicegate(&[
        "loadtest",
        &uri,
        "--calls",
        "20",
        "--rate",
        "20",
        "--concurrency",
        "10",
        "--duration",
        "1.5",
        "--json",
    ]);
    let summary = json(&output);
    assert!(output.status.success(), "{summary}");
    assert_eq!(summary["attempted"], 20);
    assert_eq!(summary["answered"], 20);
    assert_eq!(summary["failed"], 0);
    assert!(summary["setup_ms_p50"].as_f64().is_some());
    assert!(summary["setup_ms_p95"].as_f64().is_some());
    assert_eq!(summary["rtp_loss_pct"], 0.0);
    assert!(summary["jitter_ms_p95"].as_f64().is_some());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("started"), "no progress line: {stderr}");
}

#[test]
fn invalid_options_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.wav");
    let not_wav = dir.path().join("text.wav");
    std::fs::write(&not_wav, "hello").unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["call", "sip:100@example.com"], "IP address"),
        (&["call", "127.0.0.1:15399", "--codec", "gsm"], "gsm"),
        (&["call", "127.0.0.1:15399", "--transport", "sctp"], "sctp"),
        (
            &["call", "127.0.0.1:15399", "--hangup-after", "0"],
            "--hangup-after",
        ),
        (
            &["call", "127.0.0.1:15399", "--barge-in-at=-1"],
            "--barge-in-at",
        ),
        (
            &[
                "call",
                "127.0.0.1:15399",
                "--play",
                missing.to_str().unwrap(),
            ],
            "missing.wav",
        ),
        (
            &[
                "call",
                "127.0.0.1:15399",
                "--play",
                not_wav.to_str().unwrap(),
            ],
            "RIFF",
        ),
        (
            &[
                "call",
                "127.0.0.1:15399",
                "--record",
                "/nonexistent/dir/x.wav",
            ],
            "does not exist",
        ),
        (&["call", "127.0.0.1:15399", "--barge-in-at", "1"], "--play"),
        (
            &["call", "127.0.0.1:15399", "--echo", "-50:100"],
            "invalid --echo `-50:100`: gain `-50` is not a number from -40 to 0 dB",
        ),
        (
            &["call", "127.0.0.1:15399", "--echo", "-12:900"],
            "delay `900` is not a whole number of milliseconds from 0 to 500",
        ),
        (
            &["loadtest", "127.0.0.1:15399", "--echo", "12"],
            "invalid --echo `12`: give GAIN_DB:DELAY_MS",
        ),
        (&["loadtest", "127.0.0.1:15399", "--calls", "0"], "--calls"),
        (&["loadtest", "127.0.0.1:15399", "--rate", "0"], "--rate"),
        (
            &["loadtest", "127.0.0.1:15399", "--concurrency", "0"],
            "--concurrency",
        ),
    ];
    for (args, named) in cases {
        let output = voicegate(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(named),
            "{args:?} should name {named}: {stderr}"
        );
    }
}

#[test]
fn barge_in_over_greeting_is_measured() {
    // SIPp keeps talking, so the "cut" is the rest of its greeting: the figures must still
    // place the onset at the requested time and the silence after it.
    let sipp = start_sipp(15_351, Answer::Speech("PCMU"), false);
    let dir = tempfile::tempdir().unwrap();
    let play = caller_wav(dir.path());
    let uri = format!("sip:100@127.0.0.1:{}", sipp.port);
    let output = voicegate(&[
        "call",
        &uri,
        "--play",
        play.to_str().unwrap(),
        "--barge-in-at",
        "1",
        "--hangup-after",
        "6",
        "--json",
    ]);
    let report = json(&output);
    assert!(output.status.success(), "{report}");
    let barge_in = &report["barge_in"];
    let onset = barge_in["onset_ms"].as_f64().expect("barge-in measured");
    let silence = barge_in["silence_ms"].as_f64().expect("silence measured");
    let cut = barge_in["cut_ms"].as_f64().expect("cut measured");
    // espeak-ng starts speaking within a few frames of the WAV's start.
    assert!((1_000.0..1_300.0).contains(&onset), "{report}");
    assert!(silence > onset, "{report}");
    assert!((cut - (silence - onset)).abs() < 1e-6, "{report}");
    assert_eq!(report["ended_by"], "caller");
}

#[test]
fn reply_latency_is_measured() {
    // SIPp stays silent for 5 s after the ACK and then speaks; the caller talks at 0.5 s.
    let sipp = start_sipp(15_361, Answer::ReplyAfter(5_000), false);
    let dir = tempfile::tempdir().unwrap();
    let play = caller_wav(dir.path());
    let uri = format!("sip:100@127.0.0.1:{}", sipp.port);
    let output = voicegate(&[
        "call",
        &uri,
        "--play",
        play.to_str().unwrap(),
        "--greeting-timeout",
        "0.5",
        "--json",
    ]);
    let report = json(&output);
    assert!(output.status.success(), "{report}");
    let first_audio = report["first_audio_ms"].as_f64().expect("reply heard");
    // The ACK leaves at the answer; SIPp's pause and the caller's jitter buffer add the rest.
    assert!((5_000.0..5_500.0).contains(&first_audio), "{report}");
    let turns = report["turns"].as_array().expect("turns");
    assert_eq!(turns.len(), 1, "{report}");
    let speech_end = turns[0]["speech_end_ms"].as_f64().expect("speech end");
    assert!(speech_end > 500.0 && speech_end < 5_000.0, "{report}");
    assert_eq!(turns[0]["reply_start_ms"].as_f64(), Some(first_audio));
    let reply_ms = turns[0]["reply_ms"].as_f64().expect("reply latency");
    assert!(
        (reply_ms - (first_audio - speech_end)).abs() < 1e-6,
        "{report}"
    );
    // The script hangs up 2 s after the reply (about 4 s of speech) ends.
    let duration = report["duration_ms"].as_f64().expect("duration");
    assert!(duration > first_audio + 2_000.0, "{report}");
    assert_eq!(report["ended_by"], "caller");
}

#[test]
fn play_resamples_float_stereo_wav() {
    let sipp = start_sipp(15_371, Answer::Speech("PCMU"), false);
    let dir = tempfile::tempdir().unwrap();
    let mono = caller_wav(dir.path());
    let stereo = dir.path().join("float48k.wav");
    let status = std::process::Command::new("sox")
        .arg(&mono)
        .args(["-r", "48000", "-c", "2", "-e", "floating-point", "-b", "32"])
        .arg(&stereo)
        .status()
        .unwrap();
    assert!(status.success(), "sox failed");
    let reference = voicegate::media::wav::read_16k(&mono).unwrap();
    let spoken = voicegate::caller::analysis::utterances(&reference);
    assert_eq!(spoken.len(), 1, "{spoken:?}");
    let spoken_ms = spoken[0].end_ms - spoken[0].start_ms;

    let uri = format!("sip:100@127.0.0.1:{}", sipp.port);
    let output = voicegate(&[
        "call",
        &uri,
        "--play",
        stereo.to_str().unwrap(),
        "--barge-in-at",
        "0.5",
        "--hangup-after",
        "5",
        "--json",
    ]);
    let report = json(&output);
    assert!(output.status.success(), "{report}");
    let onset = report["barge_in"]["onset_ms"].as_f64().expect("onset");
    let end = report["turns"][0]["speech_end_ms"]
        .as_f64()
        .expect("speech end");
    // The same speech at 48 kHz stereo float lasts as long as the 22.05 kHz mono original.
    assert!(
        ((end - onset) - spoken_ms).abs() <= 40.0,
        "{report}; expected {spoken_ms} ms"
    );
}
