//! End to end: a real `voicegate serve` with the embedded default (SQLite, offline Whisper,
//! espeak-ng, scripted agent) answers SIPp, baresip and the built-in test caller, with speech
//! made by espeak-ng and sox at test time.

mod e2e {
    pub mod support;
}

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use e2e::support::{self, SERIAL, Server, mentions};

const QUESTION: &str = "What are your opening hours on Saturday?";
/// The default tenant's greeting.
const GREETING: &str = "Hello, thank you for calling Corner Bakery. How can I help you?";
/// Words of the scripted agent's answer to the hours question.
const HOURS_ANSWER: &[&str] = &["monday", "friday", "seven", "eight", "closed", "sunday"];

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Returns `voicegate_barge_ins_total` summed over its `mode` labels.
fn barge_ins(server: &Server) -> f64 {
    let (status, metrics) = support::http_get(server.http, "/metrics", None).expect("GET /metrics");
    assert_eq!(status, 200, "{metrics}");
    metrics
        .lines()
        .filter(|line| line.starts_with("voicegate_barge_ins_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn mu_law(dir: &Path, wav: &Path) -> std::path::PathBuf {
    let out = dir.join("question-ulaw.wav");
    support::sox(wav, &out, &["-r", "8000", "-c", "1", "-e", "u-law"], &[]);
    out
}

#[test]
fn sipp_question_is_transcribed_and_answered() {
    let _serial = serial();
    let server = Server::start(31_000, &[]);
    let work = tempfile::tempdir().unwrap();
    let wav = support::question(work.path(), QUESTION);
    let ulaw = mu_law(work.path(), &wav);
    std::fs::copy(&ulaw, work.path().join("question.wav")).unwrap();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("sipp-scenarios/question.xml");
    let sipp_port = support::free_port();
    let output = support::run(
        Command::new("sipp")
            .current_dir(work.path())
            .arg(server.sip.to_string())
            .args(["-sf", scenario.to_str().unwrap()])
            .args(["-s", "+15550100"])
            .args(["-i", "127.0.0.1", "-p", &sipp_port.to_string()])
            .args(["-mi", "127.0.0.1", "-mp", "36000"])
            .args(["-m", "1", "-timeout", "60s", "-timeout_error"])
            .arg("-trace_err")
            .stdin(Stdio::null()),
    );
    assert!(
        output.status.success(),
        "sipp failed: {}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        server.log()
    );

    let key = server.tenant_key();
    let call = server.call_detail(&key, "");
    assert_eq!(call["sip_status"], 200, "{call}");
    assert_eq!(call["codec"], "pcmu", "{call}");
    assert_eq!(call["end_reason"], "caller-bye", "{call}");
    let turns = call["turns"].as_array().expect("turns");
    let caller = turns
        .iter()
        .find(|turn| turn["role"] == "caller")
        .unwrap_or_else(|| panic!("no caller turn in {call}\n{}", server.log()));
    let heard = caller["text"].as_str().unwrap().to_lowercase();
    assert!(mentions(&heard, &["hours", "open"]), "transcript: {heard}");
    assert!(mentions(&heard, &["saturday"]), "transcript: {heard}");
    let agent = turns
        .iter()
        .filter(|turn| turn["role"] == "agent")
        .find(|turn| mentions(&turn["text"].as_str().unwrap().to_lowercase(), HOURS_ANSWER))
        .unwrap_or_else(|| panic!("no hours answer in {call}"));
    let latency = &agent["latency_ms"];
    for stage in [
        "stt_final",
        "llm_first_token",
        "tts_first_audio",
        "first_rtp",
    ] {
        assert!(
            latency[stage].is_u64(),
            "stage {stage} missing in {latency}"
        );
    }
}

#[test]
fn test_caller_hears_the_greeting_and_a_relevant_answer() {
    let _serial = serial();
    let server = Server::start(32_000, &[]);
    let work = tempfile::tempdir().unwrap();
    let wav = support::question(work.path(), QUESTION);
    let heard = work.path().join("heard.wav");
    let report = support::voicegate_call(&[
        &server.uri("+15550100"),
        "--play",
        wav.to_str().unwrap(),
        "--record",
        heard.to_str().unwrap(),
    ]);
    assert_eq!(report["answered"], true, "{report}");
    assert_eq!(report["status"], 200, "{report}");
    assert!(
        !report["call_id"].as_str().unwrap_or("").is_empty(),
        "{report}"
    );
    assert!(report["setup_ms"].is_number(), "{report}");
    assert!(report["first_audio_ms"].is_number(), "{report}");
    assert!(
        report["rtp"]["received"].as_u64().unwrap_or(0) > 100,
        "{report}"
    );
    let turns = report["turns"].as_array().expect("turns");
    assert!(
        turns.iter().any(|turn| turn["reply_ms"].is_number()),
        "no answered turn: {report}\n{}",
        server.log()
    );
    let text = support::transcribe(&heard);
    assert!(
        mentions(
            &text,
            &["thank you for calling", "corner", "bakery", "help"]
        ),
        "heard: {text}"
    );
    assert!(mentions(&text, HOURS_ANSWER), "heard: {text}");
}

#[test]
fn barge_in_cuts_the_greeting() {
    let _serial = serial();
    let server = Server::start(33_000, &[]);
    let work = tempfile::tempdir().unwrap();
    let wav = support::question(work.path(), QUESTION);
    let report = support::voicegate_call(&[
        &server.uri("+15550100"),
        "--play",
        wav.to_str().unwrap(),
        "--barge-in-at",
        "1.5",
    ]);
    assert_eq!(report["answered"], true, "{report}");
    let barge_in = &report["barge_in"];
    assert!(
        barge_in.is_object(),
        "no barge-in seen: {report}\n{}",
        server.log()
    );
    let onset = barge_in["onset_ms"].as_f64().unwrap();
    let silence = barge_in["silence_ms"].as_f64().unwrap();
    assert!(silence >= onset, "{barge_in}");
    println!("barge-in cut: {} ms", barge_in["cut_ms"]);

    let key = server.tenant_key();
    let call = server.call_detail(&key, report["call_id"].as_str().unwrap());
    let turns = call["turns"].as_array().expect("turns");
    let greeting = turns
        .iter()
        .find(|turn| turn["role"] == "agent")
        .unwrap_or_else(|| panic!("no agent turn: {call}"));
    assert_eq!(greeting["interrupted"], true, "{call}");
    let kept = greeting["text"].as_str().unwrap();
    assert!(
        kept.len() < "Hello, thank you for calling Corner Bakery. How can I help you?".len(),
        "the whole greeting was kept although it was cut: {kept}"
    );
}

#[test]
fn baresip_hears_a_spoken_reply() {
    let _serial = serial();
    let server = Server::start(34_000, &[]);
    let home = tempfile::tempdir().unwrap();
    let config_dir = home.path().join(".baresip");
    std::fs::create_dir_all(&config_dir).unwrap();
    let wav = support::question(home.path(), QUESTION);
    let source = home.path().join("source.wav");
    support::sox(
        &wav,
        &source,
        &["-r", "8000", "-c", "1", "-b", "16"],
        &["pad", "6", "15"],
    );
    let sip_port = support::free_port();
    let config = format!(
        "poll_method epoll\n\
         sip_listen 127.0.0.1:{sip_port}\n\
         audio_player aufile,/dev/null\n\
         audio_source aufile,{}\n\
         audio_alert aufile,/dev/null\n\
         rtp_ports 35000-35999\n\
         module_path /usr/lib/baresip/modules\n\
         module g711.so\n\
         module aufile.so\n\
         module sndfile.so\n\
         snd_path {}\n\
         module_app account.so\n\
         module_app menu.so\n",
        source.display(),
        home.path().display()
    );
    std::fs::write(config_dir.join("config"), config).unwrap();
    std::fs::write(
        config_dir.join("accounts"),
        format!("<sip:e2e@127.0.0.1:{sip_port}>;regint=0;audio_codecs=PCMU\n"),
    )
    .unwrap();
    let mut child = Command::new("baresip")
        .args(["-f", config_dir.to_str().unwrap()])
        .args(["-e", &format!("/dial {}", server.uri("+15550100"))])
        .args(["-t", "30"])
        .env("HOME", home.path())
        // baresip cannot poll /dev/null, so its input is a pipe that stays open.
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start baresip");
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(45) {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();

    let decoded = std::fs::read_dir(home.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            name.starts_with("dump") && name.ends_with("-dec.wav")
        })
        .unwrap_or_else(|| {
            panic!(
                "baresip wrote no decoded audio; server log:\n{}",
                server.log()
            )
        });
    let text = support::transcribe(&decoded);
    assert!(
        mentions(&text, &["thank you for calling", "bakery", "help"]),
        "heard: {text}"
    );
    assert!(
        mentions(&text, HOURS_ANSWER),
        "heard: {text}\nserver log:\n{}",
        server.log()
    );
}

#[test]
fn loadtest_fifty_concurrent_calls_without_failures() {
    let _serial = serial();
    let server = Server::start(36_000, &[]);
    // A recorded human voice from alsa-utils (48 kHz): the caller resamples it.
    let voice = Path::new("/usr/share/sounds/alsa/Front_Center.wav");
    assert!(voice.exists(), "alsa-utils is not installed");
    let output = support::run(
        Command::new(env!("CARGO_BIN_EXE_voicegate"))
            .arg("loadtest")
            .arg(server.uri("+15550100"))
            .args(["--calls", "50", "--concurrency", "50", "--rate", "25"])
            .args([
                "--duration",
                "8",
                "--play",
                voice.to_str().unwrap(),
                "--json",
            ]),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|error| {
        panic!(
            "{error}: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    println!("{summary}");
    assert_eq!(summary["attempted"], 50, "{summary}");
    assert_eq!(summary["answered"], 50, "{summary}\n{}", server.log());
    assert_eq!(summary["failed"], 0, "{summary}");
    assert!(summary["setup_ms_p95"].is_number(), "{summary}");
}

#[test]
fn health_metrics_and_graceful_drain() {
    let _serial = serial();
    let mut server = Server::start(37_000, &[("VOICEGATE_SERVER_DRAIN_SECS", "3".into())]);
    let (status, body) = support::http_get(server.http, "/healthz", None).unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, metrics) = support::http_get(server.http, "/metrics", None).unwrap();
    assert_eq!(status, 200);
    for name in [
        "voicegate_active_calls",
        "voicegate_calls_total",
        "voicegate_turn_latency_seconds",
        "voicegate_barge_in_cut_seconds",
        "voicegate_rtp_packets_lost_total",
        "voicegate_rtp_jitter_seconds",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }

    // A call that stays up through the drain is ended with BYE.
    let caller = Command::new(env!("CARGO_BIN_EXE_voicegate"))
        .arg("call")
        .arg(server.uri("+15550100"))
        .args(["--hangup-after", "60", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start caller");
    std::thread::sleep(Duration::from_secs(2));
    let (_, metrics) = support::http_get(server.http, "/metrics", None).unwrap();
    assert!(metrics.contains("voicegate_active_calls 1"), "{metrics}");

    server.terminate();
    std::thread::sleep(Duration::from_millis(500));
    let (status, body) = support::http_get(server.http, "/healthz", None).unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("draining"), "{body}");
    // New calls are refused while draining.
    let refused = support::voicegate_call(&[&server.uri("+15550100"), "--hangup-after", "1"]);
    assert_eq!(refused["status"], 503, "{refused}");

    let output = caller.wait_with_output().expect("caller output");
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("caller report json");
    assert_eq!(report["answered"], true, "{report}");
    assert_eq!(
        server.wait_exit(Duration::from_secs(20)),
        Some(true),
        "{}",
        server.log()
    );
    let log = server.log();
    assert!(log.contains("call ended"), "{log}");
    assert!(log.contains("voicegate stopped"), "{log}");
}

#[test]
fn caller_echo_never_barges_in() {
    let _serial = serial();
    let server = Server::start(38_000, &[]);
    let key = server.tenant_key();
    let work = tempfile::tempdir().unwrap();

    // The caller only echoes the server's audio back and hangs up after the greeting.
    for echo in ["-6:50", "-12:150", "-20:200"] {
        let heard = work.path().join(format!("heard{echo}.wav"));
        let before = barge_ins(&server);
        let report = support::voicegate_call(&[
            &server.uri("+15550100"),
            "--echo",
            echo,
            "--record",
            heard.to_str().unwrap(),
        ]);
        assert_eq!(report["answered"], true, "--echo {echo}: {report}");
        assert!(report["error"].is_null(), "--echo {echo}: {report}");
        let call = server.call_detail(&key, report["call_id"].as_str().unwrap());
        assert_eq!(
            barge_ins(&server) - before,
            0.0,
            "--echo {echo}: the server barged in on its own echo: {call}\n{}",
            server.log()
        );

        let turns = call["turns"].as_array().expect("turns");
        let agent: Vec<_> = turns
            .iter()
            .filter(|turn| turn["role"] == "agent")
            .collect();
        let greeting = agent
            .first()
            .unwrap_or_else(|| panic!("--echo {echo}: no agent turn: {call}"));
        assert_eq!(greeting["text"], GREETING, "--echo {echo}: {call}");
        for turn in &agent {
            assert_eq!(turn["interrupted"], false, "--echo {echo}: {call}");
        }
        assert!(
            turns.iter().all(|turn| turn["role"] != "caller"),
            "--echo {echo}: the server took its own echo for the caller: {call}"
        );

        let text = support::transcribe(&heard);
        assert!(
            mentions(&text, &["thank you for calling", "bakery"]),
            "--echo {echo}: heard {text}"
        );
        assert!(
            mentions(&text, &["help you"]),
            "--echo {echo}: heard {text}"
        );
    }

    // Real speech over the echo still interrupts the greeting, and once the caller has
    // talked over the AI, the echo of the reply must not interrupt the reply.
    let wav = support::question(work.path(), QUESTION);
    for echo in ["-12:150", "-30:150"] {
        let before = barge_ins(&server);
        let report = support::voicegate_call(&[
            &server.uri("+15550100"),
            "--echo",
            echo,
            "--play",
            wav.to_str().unwrap(),
            "--barge-in-at",
            "1.5",
        ]);
        assert_eq!(report["answered"], true, "--echo {echo}: {report}");
        assert!(
            report["barge_in"].is_object(),
            "--echo {echo}: no barge-in heard by the caller: {report}\n{}",
            server.log()
        );
        let call = server.call_detail(&key, report["call_id"].as_str().unwrap());
        let barged = barge_ins(&server) - before;
        assert_eq!(
            barged,
            1.0,
            "--echo {echo}: one barge-in expected: {call}\n{}",
            server.log()
        );
        let turns = call["turns"].as_array().expect("turns");
        let agent: Vec<_> = turns
            .iter()
            .filter(|turn| turn["role"] == "agent")
            .collect();
        let greeting = agent
            .first()
            .unwrap_or_else(|| panic!("--echo {echo}: no agent turn: {call}"));
        assert_eq!(greeting["interrupted"], true, "--echo {echo}: {call}");
        assert!(agent.len() >= 2, "--echo {echo}: no reply: {call}");
        for turn in &agent[1..] {
            assert_eq!(turn["interrupted"], false, "--echo {echo}: {call}");
        }
    }
}
