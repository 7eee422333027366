//! Optional per-call recording: a stereo 16 kHz WAV with the caller on the left channel and
//! the AI on the right, aligned to the media tick.
//!
//! The media tick calls [`Recorder::push`] once per 20 ms with whatever each side had (silence
//! for a side with nothing), so the two channels stay in step however the conversation goes.
//! `push` only copies into a block. Full blocks (100 ms) go through a bounded channel to one
//! [`RecordingWriter`] thread shared by all calls, which does the file I/O. If that thread
//! falls behind, a block is replaced by the same length of silence rather than blocking the
//! tick, so the timeline stays aligned. The WAV header is rewritten about once a second and
//! finalised when the recorder is finished or dropped, so an abrupt end still leaves a valid
//! file.

mod metrics;
mod writer;

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::time::Duration;

pub use writer::RecordingSummary;

use crate::audio::{FRAME_SAMPLES, SAMPLE_RATE};
use writer::{Block, Registration};

/// Stereo frames per block handed to the writer (100 ms).
const BLOCK_FRAMES: usize = FRAME_SAMPLES * 5;
/// Blocks that may wait for the writer before the recorder starts dropping (2 s).
const QUEUED_BLOCKS: usize = 20;
/// Emptied buffers the writer may hand back for reuse.
const RECYCLED_BLOCKS: usize = 4;

/// Error starting or finishing a recording.
#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    /// The recording file could not be created.
    #[error("cannot create recording {path}: {message}")]
    Create {
        /// File concerned.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The writer thread could not be started.
    #[error("cannot start the recording writer thread: {0}")]
    Spawn(std::io::Error),
    /// The writer thread is gone, so nothing more can be recorded.
    #[error("the recording writer thread has stopped")]
    WriterStopped,
    /// The writer did not close the file in time.
    #[error("recording {path} was not closed within {timeout:?}")]
    Timeout {
        /// File concerned.
        path: PathBuf,
        /// How long `finish` waited.
        timeout: Duration,
    },
}

/// Handle to the thread that writes recordings. Cheap to clone; the thread ends once every
/// handle is dropped and its last recording is closed.
#[derive(Debug, Clone)]
pub struct RecordingWriter {
    registrations: Sender<Registration>,
}

impl RecordingWriter {
    /// Starts a writer thread.
    pub fn start() -> Result<Self, RecorderError> {
        let (registrations, receiver) = mpsc::channel();
        std::thread::Builder::new()
            .name("voicegate-recorder".into())
            .spawn(move || writer::run(receiver))
            .map_err(RecorderError::Spawn)?;
        Ok(Self { registrations })
    }

    /// Returns the process-wide writer, starting it on first use.
    pub fn shared() -> Result<Self, RecorderError> {
        static SHARED: Mutex<Option<RecordingWriter>> = Mutex::new(None);
        let mut shared = SHARED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(writer) = shared.as_ref() {
            return Ok(writer.clone());
        }
        let writer = Self::start()?;
        *shared = Some(writer.clone());
        Ok(writer)
    }
}

/// One call's recording, fed by the media tick.
#[derive(Debug)]
pub struct Recorder {
    path: PathBuf,
    blocks: Option<SyncSender<Block>>,
    recycle: Receiver<Vec<i16>>,
    done: Receiver<RecordingSummary>,
    /// Interleaved samples of the block being filled.
    current: Vec<i16>,
    /// Frames dropped since the last block that reached the writer.
    gap_frames: u64,
}

impl Recorder {
    /// Creates the WAV file at `path` (and its directory) and registers it with `writer`.
    /// Creating the file is blocking I/O: call this at call setup, not from the media tick.
    pub fn create(path: &Path, writer: &RecordingWriter) -> Result<Self, RecorderError> {
        let create_error = |message: String| RecorderError::Create {
            path: path.to_path_buf(),
            message,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|error| create_error(error.to_string()))?;
        }
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let file = File::create(path).map_err(|error| create_error(error.to_string()))?;
        let wav = hound::WavWriter::new(BufWriter::new(file), spec)
            .map_err(|error| create_error(error.to_string()))?;

        let (blocks, block_receiver) = mpsc::sync_channel(QUEUED_BLOCKS);
        let (recycle_sender, recycle) = mpsc::sync_channel(RECYCLED_BLOCKS);
        let (done_sender, done) = mpsc::sync_channel(1);
        writer
            .registrations
            .send(Registration {
                path: path.to_path_buf(),
                wav,
                blocks: block_receiver,
                recycle: recycle_sender,
                done: done_sender,
            })
            .map_err(|_| RecorderError::WriterStopped)?;
        tracing::info!(path = %path.display(), "recording started");
        Ok(Self {
            path: path.to_path_buf(),
            blocks: Some(blocks),
            recycle,
            done,
            current: Vec::with_capacity(2 * BLOCK_FRAMES),
            gap_frames: 0,
        })
    }

    /// File being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records one 20 ms tick: [`FRAME_SAMPLES`] frames with `caller` on the left and `ai` on
    /// the right. A missing side is silence, a shorter slice is padded with silence and a
    /// longer one is cut to the frame. Never blocks. It allocates only when the writer has not
    /// yet handed back an emptied block buffer.
    pub fn push(&mut self, caller: Option<&[i16]>, ai: Option<&[i16]>) {
        let caller = caller.unwrap_or(&[]);
        let ai = ai.unwrap_or(&[]);
        for index in 0..FRAME_SAMPLES {
            self.current.push(caller.get(index).copied().unwrap_or(0));
            self.current.push(ai.get(index).copied().unwrap_or(0));
        }
        if self.current.len() >= 2 * BLOCK_FRAMES {
            self.hand_over();
        }
    }

    /// Hands the current block to the writer without blocking. When the writer is behind,
    /// the block becomes a gap of silence in front of the next block that gets through.
    fn hand_over(&mut self) {
        let Some(blocks) = &self.blocks else {
            self.current.clear();
            return;
        };
        let block = Block {
            gap_frames: self.gap_frames,
            samples: std::mem::take(&mut self.current),
        };
        match blocks.try_send(block) {
            Ok(()) => {
                self.gap_frames = 0;
                self.current = self
                    .recycle
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(2 * BLOCK_FRAMES));
            }
            Err(TrySendError::Full(block) | TrySendError::Disconnected(block)) => {
                let frames = block.samples.len() / 2;
                self.gap_frames += frames as u64;
                metrics::DROPPED_FRAMES.inc_by(frames as u64);
                tracing::debug!(path = %self.path.display(), frames, "recording writer behind, block dropped");
                self.current = block.samples;
                self.current.clear();
            }
        }
    }

    /// Writes what is buffered, closes the file and waits up to `timeout` for the writer to
    /// finalise it. Blocks: call it from call teardown, not from the media tick (dropping the
    /// recorder closes the file without waiting).
    pub fn finish(mut self, timeout: Duration) -> Result<RecordingSummary, RecorderError> {
        if let Some(blocks) = self.blocks.take() {
            let block = Block {
                gap_frames: self.gap_frames,
                samples: std::mem::take(&mut self.current),
            };
            if !block.samples.is_empty() || block.gap_frames > 0 {
                blocks
                    .send(block)
                    .map_err(|_| RecorderError::WriterStopped)?;
            }
        }
        match self.done.recv_timeout(timeout) {
            Ok(summary) => Ok(summary),
            Err(RecvTimeoutError::Timeout) => Err(RecorderError::Timeout {
                path: self.path.clone(),
                timeout,
            }),
            Err(RecvTimeoutError::Disconnected) => Err(RecorderError::WriterStopped),
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if self.blocks.is_some() && (!self.current.is_empty() || self.gap_frames > 0) {
            self.hand_over();
        }
        // The writer finalises the file once this channel is closed.
        self.blocks = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::wav::WavAudio;

    fn read_stereo(path: &Path) -> (Vec<i16>, Vec<i16>) {
        let bytes = std::fs::read(path).unwrap();
        let mut reader = hound::WavReader::new(bytes.as_slice()).unwrap();
        assert_eq!(reader.spec().channels, 2);
        assert_eq!(reader.spec().sample_rate, 16_000);
        let samples: Vec<i16> = reader.samples::<i16>().map(|s| s.unwrap()).collect();
        let left = samples.iter().step_by(2).copied().collect();
        let right = samples.iter().skip(1).step_by(2).copied().collect();
        (left, right)
    }

    #[test]
    fn channels_stay_aligned_per_tick() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("call.wav");
        let writer = RecordingWriter::start().unwrap();
        let mut recorder = Recorder::create(&path, &writer).unwrap();
        for tick in 0..23i16 {
            let caller = [tick; FRAME_SAMPLES];
            let ai = [-tick; 100];
            match tick % 3 {
                0 => recorder.push(Some(&caller), None),
                1 => recorder.push(None, Some(&ai)),
                _ => recorder.push(Some(&caller), Some(&ai)),
            }
        }
        let summary = recorder.finish(Duration::from_secs(30)).unwrap();
        assert_eq!(summary.frames, 23 * FRAME_SAMPLES as u64);
        assert_eq!(summary.dropped_frames, 0);
        assert_eq!(summary.error, None);

        let (left, right) = read_stereo(&path);
        assert_eq!(left.len(), 23 * FRAME_SAMPLES);
        for tick in 0..23usize {
            let start = tick * FRAME_SAMPLES;
            let expected_left = if tick % 3 == 1 { 0 } else { tick as i16 };
            assert_eq!(left[start], expected_left, "tick {tick}");
            assert_eq!(
                left[start + FRAME_SAMPLES - 1],
                expected_left,
                "tick {tick}"
            );
            let expected_right = if tick % 3 == 0 { 0 } else { -(tick as i16) };
            assert_eq!(right[start], expected_right, "tick {tick}");
            assert_eq!(right[start + 99], expected_right, "tick {tick}");
            assert_eq!(right[start + 100], 0, "AI frame padded, tick {tick}");
        }
    }

    #[test]
    fn drop_finalises_the_file() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("dropped.wav");
        let writer = RecordingWriter::start().unwrap();
        let mut recorder = Recorder::create(&path, &writer).unwrap();
        for _ in 0..7 {
            recorder.push(Some(&[1000; FRAME_SAMPLES]), Some(&[-1000; FRAME_SAMPLES]));
        }
        let done = std::mem::replace(&mut recorder.done, mpsc::sync_channel(1).1);
        drop(recorder);
        let summary = done.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(summary.frames, 7 * FRAME_SAMPLES as u64);
        let audio = WavAudio::open(&path).unwrap();
        assert_eq!(audio.samples.len(), 7 * FRAME_SAMPLES);
    }

    #[test]
    fn header_is_valid_while_recording() {
        // A file read while the call is still going (or after a crash) contains every flushed
        // second.
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("live.wav");
        let writer = RecordingWriter::start().unwrap();
        let mut recorder = Recorder::create(&path, &writer).unwrap();
        for _ in 0..60 {
            recorder.push(Some(&[5; FRAME_SAMPLES]), None);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let frames = loop {
            let bytes = std::fs::read(&path).unwrap();
            let frames = WavAudio::from_bytes(&bytes)
                .map(|a| a.samples.len())
                .unwrap_or(0);
            if frames >= 16_000 || std::time::Instant::now() > deadline {
                break frames;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(
            frames >= 16_000,
            "only {frames} frames readable during the call"
        );
        recorder.finish(Duration::from_secs(30)).unwrap();
    }

    #[test]
    fn unwritable_path_is_an_error() {
        let writer = RecordingWriter::start().unwrap();
        let error = Recorder::create(Path::new("/proc/voicegate/x.wav"), &writer).unwrap_err();
        assert!(matches!(error, RecorderError::Create { .. }), "{error}");
    }

    #[test]
    fn stalled_writer_turns_blocks_into_silence() {
        // A writer handle whose thread never runs: every block after the queue fills is
        // dropped and counted as a gap.
        let (registrations, receiver) = mpsc::channel();
        let writer = RecordingWriter { registrations };
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("stalled.wav");
        let mut recorder = Recorder::create(&path, &writer).unwrap();
        let ticks = (QUEUED_BLOCKS + 3) * BLOCK_FRAMES / FRAME_SAMPLES;
        for _ in 0..ticks {
            recorder.push(Some(&[7; FRAME_SAMPLES]), None);
        }
        assert_eq!(recorder.gap_frames, 3 * BLOCK_FRAMES as u64);

        // Now let the writer run. Less than a block follows, so `finish` hands it over (with
        // a blocking send) and the gap is written as silence in front of it.
        std::thread::spawn(move || writer::run(receiver));
        let tail_ticks = BLOCK_FRAMES / FRAME_SAMPLES - 1;
        for _ in 0..tail_ticks {
            recorder.push(Some(&[9; FRAME_SAMPLES]), None);
        }
        drop(writer);
        let summary = recorder.finish(Duration::from_secs(30)).unwrap();
        assert_eq!(summary.dropped_frames, 3 * BLOCK_FRAMES as u64);
        let expected_frames = (QUEUED_BLOCKS + 3) * BLOCK_FRAMES + tail_ticks * FRAME_SAMPLES;
        assert_eq!(summary.frames, expected_frames as u64);
        let (left, _) = read_stereo(&path);
        assert_eq!(left.len(), expected_frames);
        let gap_start = QUEUED_BLOCKS * BLOCK_FRAMES;
        assert_eq!(left[gap_start - 1], 7);
        assert!(
            left[gap_start..gap_start + 3 * BLOCK_FRAMES]
                .iter()
                .all(|&s| s == 0)
        );
        assert_eq!(left[gap_start + 3 * BLOCK_FRAMES], 9);
    }
}
