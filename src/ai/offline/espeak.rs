//! Offline text-to-speech with the `espeak-ng` program.
//!
//! Each sentence runs one `espeak-ng --stdin --stdout` process. The text goes in on stdin, so
//! no shell parses it and espeak-ng never reads it as an option. The WAV that espeak-ng writes to
//! stdout (16-bit mono, 22050 Hz, with placeholder sizes because it streams) is parsed as it
//! arrives and resampled to 16 kHz, so playback starts before synthesis ends. Dropping the
//! stream kills the process, and a semaphore caps how many run at once.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, BoxStream, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::ai::provider::{ProviderError, TtsProvider, VoiceOptions};
use crate::audio::SAMPLE_RATE;
use crate::media::resample::Resampler;

const PROVIDER: &str = "espeak";
/// Bytes read from espeak-ng per chunk (about 90 ms at 22050 Hz).
const READ_BYTES: usize = 4_096;
/// Largest WAV header accepted before the `data` chunk.
const MAX_HEADER_BYTES: usize = 4_096;
/// Maximum text spoken in one synthesis, in bytes.
const MAX_TEXT_BYTES: usize = 8_192;

/// espeak-ng settings.
#[derive(Debug, Clone)]
pub struct EspeakSettings {
    /// Program to run.
    pub program: String,
    /// Default voice (`ai.espeak_voice`), used when the request names none.
    pub voice: String,
    /// Speaking rate in words per minute (`ai.espeak_rate`).
    pub rate: u32,
    /// Processes allowed to run at once; more requests wait for a slot.
    pub max_processes: usize,
    /// Maximum time one synthesis may run before the process is killed.
    pub timeout: Duration,
}

impl EspeakSettings {
    /// Settings for `voice` and `rate`, with a process limit of twice the CPU count.
    pub fn new(voice: &str, rate: u32) -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            program: "espeak-ng".to_owned(),
            voice: voice.to_owned(),
            rate,
            max_processes: cpus * 2,
            timeout: Duration::from_secs(20),
        }
    }
}

/// espeak-ng text-to-speech provider.
#[derive(Debug, Clone)]
pub struct EspeakTts {
    settings: Arc<EspeakSettings>,
    slots: Arc<Semaphore>,
}

impl EspeakTts {
    /// Creates the provider.
    pub fn new(settings: EspeakSettings) -> Self {
        let slots = Arc::new(Semaphore::new(settings.max_processes.max(1)));
        Self {
            settings: Arc::new(settings),
            slots,
        }
    }

    fn command(&self, voice: &str) -> Command {
        let mut command = Command::new(&self.settings.program);
        command
            .arg("--stdin")
            .arg("--stdout")
            .arg("-v")
            .arg(voice)
            .arg("-s")
            .arg(self.settings.rate.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        command
    }
}

/// Checks a voice name: letters, digits and `-_+/.`, not starting with `-`.
pub fn valid_voice(voice: &str) -> bool {
    !voice.is_empty()
        && voice.len() <= 64
        && !voice.starts_with('-')
        && voice
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_+/.".contains(c))
}

#[async_trait::async_trait]
impl TtsProvider for EspeakTts {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    async fn synthesize(
        &self,
        text: &str,
        voice: &VoiceOptions,
    ) -> Result<BoxStream<'static, Result<Vec<i16>, ProviderError>>, ProviderError> {
        let voice = if voice.voice.is_empty() {
            &self.settings.voice
        } else {
            &voice.voice
        };
        if !valid_voice(voice) {
            return Err(config_error(format!("invalid espeak-ng voice `{voice}`")));
        }
        if text.len() > MAX_TEXT_BYTES {
            return Err(config_error(format!(
                "text of {} bytes is longer than {MAX_TEXT_BYTES}",
                text.len()
            )));
        }
        if text.trim().is_empty() {
            return Ok(stream::empty().boxed());
        }
        let permit = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .map_err(|_| connect_error("the process limit is closed".to_owned()))?;
        let deadline = Instant::now() + self.settings.timeout;

        let mut child = self
            .command(voice)
            .spawn()
            .map_err(|err| connect_error(format!("cannot run {}: {err}", self.settings.program)))?;
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(connect_error(
                "espeak-ng has no stdin or stdout pipe".to_owned(),
            ));
        };
        // espeak-ng reads its input as it speaks, so a long text is written while it runs.
        let mut line = text.replace(['\r', '\n'], " ");
        line.push('\n');
        let write = async move {
            let _ = stdin.write_all(line.as_bytes()).await;
        };
        tokio::spawn(write);

        tracing::debug!(pid = child.id(), "espeak-ng started");
        let synthesis = Synthesis {
            child,
            stdout,
            header: Vec::new(),
            samples_started: false,
            odd_byte: None,
            resampler: None,
            deadline,
            timeout: self.settings.timeout,
            finished: false,
            _permit: permit,
        };
        Ok(stream::unfold(synthesis, |mut s| async move {
            let item = s.next_chunk().await?;
            Some((item, s))
        })
        .boxed())
    }
}

fn config_error(message: String) -> ProviderError {
    ProviderError::Config {
        provider: PROVIDER,
        message,
    }
}

fn connect_error(message: String) -> ProviderError {
    ProviderError::Connect {
        provider: PROVIDER,
        message,
    }
}

fn protocol_error(message: String) -> ProviderError {
    ProviderError::Protocol {
        provider: PROVIDER,
        message,
    }
}

/// One running espeak-ng process. Dropping it kills the process (`kill_on_drop`) and frees
/// its slot.
struct Synthesis {
    child: Child,
    stdout: ChildStdout,
    header: Vec<u8>,
    samples_started: bool,
    odd_byte: Option<u8>,
    resampler: Option<Resampler>,
    deadline: Instant,
    timeout: Duration,
    finished: bool,
    _permit: OwnedSemaphorePermit,
}

impl Synthesis {
    /// Returns the next non-empty chunk of 16 kHz PCM, an error, or `None` at the end.
    async fn next_chunk(&mut self) -> Option<Result<Vec<i16>, ProviderError>> {
        if self.finished {
            return None;
        }
        let mut buffer = vec![0u8; READ_BYTES];
        loop {
            let read = tokio::time::timeout_at(self.deadline, self.stdout.read(&mut buffer)).await;
            let result = match read {
                Err(_) => Err(ProviderError::Timeout {
                    provider: PROVIDER,
                    after: self.timeout,
                }),
                Ok(Err(err)) => Err(connect_error(format!("reading espeak-ng output: {err}"))),
                Ok(Ok(0)) => return self.finish().await,
                Ok(Ok(n)) => self.accept(&buffer[..n]),
            };
            match result {
                Ok(pcm) if pcm.is_empty() => continue,
                Ok(pcm) => return Some(Ok(pcm)),
                Err(err) => {
                    self.finished = true;
                    let _ = self.child.start_kill();
                    return Some(Err(err));
                }
            }
        }
    }

    /// Takes bytes of espeak-ng output and returns the 16 kHz samples they complete.
    fn accept(&mut self, bytes: &[u8]) -> Result<Vec<i16>, ProviderError> {
        let data = if self.samples_started {
            bytes.to_vec()
        } else {
            self.header.extend_from_slice(bytes);
            match parse_header(&self.header)? {
                None if self.header.len() > MAX_HEADER_BYTES => {
                    return Err(protocol_error("WAV header too long".to_owned()));
                }
                None => return Ok(Vec::new()),
                Some((rate, data_start)) => {
                    let resampler = Resampler::new(rate, SAMPLE_RATE)
                        .map_err(|err| protocol_error(err.to_string()))?;
                    self.resampler = Some(resampler);
                    self.samples_started = true;
                    self.header.split_off(data_start)
                }
            }
        };
        let samples = self.decode_samples(&data);
        let mut out = Vec::new();
        if let Some(resampler) = self.resampler.as_mut() {
            resampler.process(&samples, &mut out);
        }
        Ok(out)
    }

    /// Converts little-endian bytes to samples, carrying an odd byte to the next read.
    fn decode_samples(&mut self, data: &[u8]) -> Vec<i16> {
        let mut bytes = Vec::with_capacity(data.len() + 1);
        bytes.extend(self.odd_byte.take());
        bytes.extend_from_slice(data);
        if bytes.len() % 2 == 1 {
            self.odd_byte = bytes.pop();
        }
        bytes
            .chunks_exact(2)
            .map(|pair| i16::from_le_bytes([pair[0], pair[1]]))
            .collect()
    }

    /// Flushes the resampler at end of output and checks how espeak-ng exited.
    async fn finish(&mut self) -> Option<Result<Vec<i16>, ProviderError>> {
        self.finished = true;
        let status = tokio::time::timeout_at(self.deadline, self.child.wait()).await;
        let Some(resampler) = self.resampler.as_mut() else {
            let message = match status {
                Ok(Ok(status)) => format!("espeak-ng wrote no audio ({status})"),
                _ => "espeak-ng wrote no audio".to_owned(),
            };
            return Some(Err(protocol_error(message)));
        };
        if let Ok(Ok(status)) = status
            && !status.success()
        {
            tracing::debug!(%status, "espeak-ng exited with an error after writing audio");
        }
        // Zeros push the filter's delayed tail out.
        let delay = (resampler.delay_seconds() * f64::from(resampler.input_rate())).ceil();
        let zeros = vec![0i16; delay as usize + 1];
        let mut tail = Vec::new();
        resampler.process(&zeros, &mut tail);
        (!tail.is_empty()).then_some(Ok(tail))
    }
}

/// Parses a streamed RIFF/WAVE header. Returns the sample rate and the offset of the sample
/// data, or `None` while more bytes are needed. Only 16-bit mono PCM is accepted, which is
/// what espeak-ng writes.
pub fn parse_header(bytes: &[u8]) -> Result<Option<(u32, usize)>, ProviderError> {
    if bytes.len() < 12 {
        return Ok(None);
    }
    if &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(protocol_error("espeak-ng output is not WAV".to_owned()));
    }
    let mut offset = 12;
    let mut rate = None;
    while offset + 8 <= bytes.len() {
        let id = &bytes[offset..offset + 4];
        let size = u32::from_le_bytes([
            bytes[offset + 4],
            bytes[offset + 5],
            bytes[offset + 6],
            bytes[offset + 7],
        ]) as usize;
        let body = offset + 8;
        if id == b"data" {
            return match rate {
                Some(rate) => Ok(Some((rate, body))),
                None => Err(protocol_error("WAV data before its format".to_owned())),
            };
        }
        if size > MAX_HEADER_BYTES {
            return Err(protocol_error(format!(
                "WAV chunk of {size} bytes before data"
            )));
        }
        if body + size > bytes.len() {
            return Ok(None);
        }
        if id == b"fmt " {
            rate = Some(parse_format(&bytes[body..body + size])?);
        }
        // RIFF chunks are padded to an even size.
        offset = body + size + (size & 1);
    }
    Ok(None)
}

fn parse_format(fmt: &[u8]) -> Result<u32, ProviderError> {
    if fmt.len() < 16 {
        return Err(protocol_error("WAV format chunk too short".to_owned()));
    }
    let tag = u16::from_le_bytes([fmt[0], fmt[1]]);
    let channels = u16::from_le_bytes([fmt[2], fmt[3]]);
    let rate = u32::from_le_bytes([fmt[4], fmt[5], fmt[6], fmt[7]]);
    let bits = u16::from_le_bytes([fmt[14], fmt[15]]);
    if tag != 1 || channels != 1 || bits != 16 {
        return Err(protocol_error(format!(
            "WAV format {tag} with {channels} channels and {bits} bits; expected 16-bit mono PCM"
        )));
    }
    Ok(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(rate: u32) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(b"RIFF\x24\xf0\xff\x7fWAVEfmt \x10\0\0\0\x01\0\x01\0");
        h.extend_from_slice(&rate.to_le_bytes());
        h.extend_from_slice(&(rate * 2).to_le_bytes());
        h.extend_from_slice(b"\x02\0\x10\0data\0\xf0\xff\x7f");
        h
    }

    #[test]
    fn header_of_streamed_wav() {
        let h = header(22_050);
        assert_eq!(parse_header(&h).ok().flatten(), Some((22_050, 44)));
    }

    #[test]
    fn header_needs_more_bytes() {
        let h = header(22_050);
        for len in [0, 11, 20, 43] {
            assert_eq!(parse_header(&h[..len]).ok(), Some(None), "{len}");
        }
    }

    #[test]
    fn header_rejects_other_formats() {
        let mut stereo = header(22_050);
        stereo[22] = 2;
        assert!(parse_header(&stereo).is_err());
        assert!(parse_header(b"RIFX\0\0\0\0WAVEfmt ").is_err());
    }

    #[test]
    fn voice_names() {
        assert!(valid_voice("en-us"));
        assert!(valid_voice("mb/mb-en1"));
        assert!(valid_voice("en+f3"));
        assert!(!valid_voice("-w/tmp/x"));
        assert!(!valid_voice(""));
        assert!(!valid_voice("en us"));
    }
}
