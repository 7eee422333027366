//! Offline speech-to-text with Whisper (`faster-whisper`, CTranslate2 int8 on the CPU)
//! through the shared [`WhisperHelper`] process.
//!
//! Whisper is not a streaming recogniser, so a session buffers the caller audio of the
//! current utterance and transcribes it when the loop sends [`SttInput::Finalize`]. Every
//! finalize produces exactly one [`SttEvent::Final`], empty when the buffer held no speech.

use futures::StreamExt;
use futures::stream::FuturesOrdered;
use tokio::sync::mpsc;

use super::helper::WhisperHelper;
use crate::ai::provider::{ProviderError, SttEvent, SttInput, SttOptions, SttProvider, SttSession};
use crate::audio::SAMPLE_RATE;

/// Maximum utterance buffered, in seconds; later audio of the same utterance is dropped.
pub const MAX_UTTERANCE_SECS: usize = 30;
const MAX_SAMPLES: usize = MAX_UTTERANCE_SECS * SAMPLE_RATE as usize;
/// Samples per energy frame (20 ms).
const FRAME: usize = SAMPLE_RATE as usize / 50;
/// RMS of a frame that counts as speech, about -42 dBFS.
// NOTE: a fixed threshold; loud line noise above it is sent to Whisper as speech.
const SPEECH_RMS: f64 = 260.0;
/// Speech frames an utterance needs before Whisper is asked (100 ms); shorter bursts are
/// clicks or line noise.
const MIN_SPEECH_FRAMES: usize = 5;
/// Silence kept around the speech, in frames (200 ms), so word edges are not clipped.
const PAD_FRAMES: usize = 10;
/// Maximum initial prompt, in bytes. Whisper reads at most 224 prompt tokens.
const MAX_PROMPT_BYTES: usize = 600;

/// Whisper speech-to-text provider; every session shares one helper process.
#[derive(Debug, Clone)]
pub struct WhisperStt {
    helper: WhisperHelper,
    beam: u32,
}

impl WhisperStt {
    /// Creates the provider on `helper`, decoding with beam width `beam` (`ai.whisper_beam`).
    pub fn new(helper: WhisperHelper, beam: u32) -> Self {
        Self {
            helper,
            beam: beam.max(1),
        }
    }
}

impl SttProvider for WhisperStt {
    fn name(&self) -> &'static str {
        "whisper"
    }

    fn start(&self, options: SttOptions) -> SttSession {
        let (input, input_rx) = mpsc::channel(256);
        let (events_tx, events) = mpsc::channel(16);
        let session = Session {
            helper: self.helper.clone(),
            beam: self.beam,
            prompt: initial_prompt(&options.keywords),
            call_id: options.call_id,
        };
        tokio::spawn(session.run(input_rx, events_tx));
        SttSession { input, events }
    }
}

/// Builds Whisper's initial prompt from the tenant keywords, as a sentence: Whisper follows
/// the prompt's vocabulary and style, which helps it on narrow-band phone audio.
pub fn initial_prompt(keywords: &[String]) -> String {
    let words: Vec<&str> = keywords
        .iter()
        .map(|k| k.trim())
        .filter(|k| !k.is_empty())
        .collect();
    let list = match words.as_slice() {
        [] => return String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    };
    let mut prompt = format!("A caller asks a shop about {list}.");
    if prompt.len() > MAX_PROMPT_BYTES {
        let mut end = MAX_PROMPT_BYTES;
        while !prompt.is_char_boundary(end) {
            end -= 1;
        }
        prompt.truncate(end);
    }
    prompt
}

/// Returns the speech part of `pcm` with silence trimmed (keeping a short pad), or `None` when
/// it contains too little speech energy to be worth decoding.
pub fn trim_silence(pcm: &[i16]) -> Option<&[i16]> {
    let voiced: Vec<bool> = pcm
        .chunks(FRAME)
        .map(|f| frame_rms(f) >= SPEECH_RMS)
        .collect();
    if voiced.iter().filter(|&&v| v).count() < MIN_SPEECH_FRAMES {
        return None;
    }
    let first = voiced.iter().position(|&v| v)?;
    let last = voiced.iter().rposition(|&v| v)?;
    let start = first.saturating_sub(PAD_FRAMES) * FRAME;
    let end = ((last + 1 + PAD_FRAMES) * FRAME).min(pcm.len());
    Some(&pcm[start..end])
}

fn frame_rms(frame: &[i16]) -> f64 {
    if frame.is_empty() {
        return 0.0;
    }
    let sum: f64 = frame.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / frame.len() as f64).sqrt()
}

/// Caller audio of the current utterance, capped at [`MAX_UTTERANCE_SECS`].
#[derive(Debug, Default)]
pub struct UtteranceBuffer {
    samples: Vec<i16>,
    overflowed: bool,
}

impl UtteranceBuffer {
    /// Appends audio up to the cap. Returns `false` the first time audio is dropped in this
    /// utterance, so the caller logs it once.
    pub fn push(&mut self, samples: &[i16]) -> bool {
        let room = MAX_SAMPLES.saturating_sub(self.samples.len());
        self.samples
            .extend_from_slice(&samples[..samples.len().min(room)]);
        if samples.len() <= room || self.overflowed {
            return true;
        }
        self.overflowed = true;
        false
    }

    /// Takes the utterance out, leaving the buffer empty for the next one.
    pub fn take(&mut self) -> Vec<i16> {
        self.overflowed = false;
        std::mem::take(&mut self.samples)
    }
}

struct Session {
    helper: WhisperHelper,
    beam: u32,
    prompt: String,
    call_id: String,
}

impl Session {
    async fn run(self, mut input: mpsc::Receiver<SttInput>, events: mpsc::Sender<SttEvent>) {
        let mut buffer = UtteranceBuffer::default();
        // Utterances finalized but not yet transcribed, transcribed in order.
        let mut transcriptions = FuturesOrdered::new();
        let mut input_open = true;
        tracing::debug!(call_id = %self.call_id, "Whisper session started");
        while input_open || !transcriptions.is_empty() {
            tokio::select! {
                message = input.recv(), if input_open => match message {
                    Some(SttInput::Audio(samples)) => {
                        if !buffer.push(&samples) {
                            tracing::debug!(
                                call_id = %self.call_id,
                                max_secs = MAX_UTTERANCE_SECS,
                                "utterance too long, dropping the rest"
                            );
                        }
                    }
                    // TODO: no partial transcripts; the loop gets one final per utterance.
                    Some(SttInput::Finalize) => {
                        transcriptions.push_back(self.transcribe(buffer.take(), events.clone()));
                    }
                    // The buffer is kept across a hold so the utterance continues after it.
                    Some(SttInput::Pause) | Some(SttInput::Resume) => {}
                    None => input_open = false,
                },
                Some(result) = transcriptions.next(), if !transcriptions.is_empty() => {
                    let event = match result {
                        Ok(text) => SttEvent::Final(text),
                        Err(err) => {
                            let _ = events.send(SttEvent::Failed(err)).await;
                            return;
                        }
                    };
                    if events.send(event).await.is_err() {
                        return;
                    }
                }
            }
        }
        tracing::debug!(call_id = %self.call_id, "Whisper session closed");
    }

    /// Transcribes one utterance. A helper crash costs one retry after its restart, announced
    /// with [`SttEvent::Reconnecting`]; a second failure ends the session.
    fn transcribe(
        &self,
        utterance: Vec<i16>,
        events: mpsc::Sender<SttEvent>,
    ) -> impl Future<Output = Result<String, ProviderError>> + use<> {
        let helper = self.helper.clone();
        let beam = self.beam;
        let prompt = self.prompt.clone();
        let call_id = self.call_id.clone();
        async move {
            let Some(speech) = trim_silence(&utterance) else {
                let samples = utterance.len();
                tracing::debug!(%call_id, samples, "no speech energy, skipping Whisper");
                return Ok(String::new());
            };
            let speech = speech.to_vec();
            let started = std::time::Instant::now();
            let result = match helper
                .transcribe(speech.clone(), beam, prompt.clone())
                .await
            {
                Err(err @ ProviderError::Connect { .. }) => {
                    tracing::warn!(%call_id, error = %err, "Whisper helper failed, retrying");
                    let _ = events.send(SttEvent::Reconnecting).await;
                    helper.transcribe(speech, beam, prompt).await
                }
                other => other,
            };
            let elapsed_ms = started.elapsed().as_millis() as u64;
            let ok = result.is_ok();
            tracing::debug!(%call_id, elapsed_ms, ok, "Whisper transcription done");
            result
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(len: usize, amplitude: f64) -> Vec<i16> {
        (0..len)
            .map(|n| (amplitude * (n as f64 * 0.2).sin()) as i16)
            .collect()
    }

    #[test]
    fn buffer_caps_utterance() {
        let mut buffer = UtteranceBuffer::default();
        let second = vec![1i16; SAMPLE_RATE as usize];
        for _ in 0..MAX_UTTERANCE_SECS {
            assert!(buffer.push(&second));
        }
        assert!(!buffer.push(&second), "first overflow is reported");
        assert!(buffer.push(&second), "later overflows are not");
        assert_eq!(buffer.take().len(), MAX_SAMPLES);
        assert!(buffer.push(&second), "a new utterance starts empty");
        assert_eq!(buffer.take().len(), SAMPLE_RATE as usize);
    }

    #[test]
    fn prompt_lists_keywords_as_sentence() {
        let keywords = ["opening hours", "Saturday", "address"].map(String::from);
        assert_eq!(
            initial_prompt(&keywords),
            "A caller asks a shop about opening hours, Saturday and address."
        );
        assert_eq!(initial_prompt(&[]), "");
        assert_eq!(
            initial_prompt(&["prices".to_owned()]),
            "A caller asks a shop about prices."
        );
    }

    #[test]
    fn prompt_is_capped() {
        let keywords = vec!["é".repeat(100); 20];
        let prompt = initial_prompt(&keywords);
        assert!(prompt.len() <= MAX_PROMPT_BYTES);
    }

    #[test]
    fn silence_is_not_speech() {
        assert_eq!(trim_silence(&vec![0; 16_000]), None);
        assert_eq!(trim_silence(&tone(16_000, 100.0)), None);
        assert_eq!(trim_silence(&[]), None);
    }

    #[test]
    fn short_click_is_not_speech() {
        let mut pcm = vec![0i16; 16_000];
        pcm[8_000..8_000 + 2 * FRAME].copy_from_slice(&tone(2 * FRAME, 8_000.0));
        assert_eq!(trim_silence(&pcm), None);
    }

    #[test]
    fn trim_keeps_speech_with_pad() {
        let mut pcm = vec![0i16; 48_000];
        pcm[16_000..32_000].copy_from_slice(&tone(16_000, 5_000.0));
        let speech = trim_silence(&pcm).map(<[i16]>::len);
        assert_eq!(speech, Some(16_000 + 2 * PAD_FRAMES * FRAME));
    }
}
