//! The thread that writes every open recording to disk, so that the media tick never waits on
//! a file.
//!
//! Each recording has its own bounded channel of audio blocks. The thread sweeps all of them,
//! writes what arrived, and rewrites each WAV header about once a second, so that a file stays
//! readable up to its last second if the process dies. A recording whose sender is gone (the
//! [`Recorder`](super::Recorder) finished or was dropped) is finalised and closed.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::time::Duration;

use super::metrics;

/// Pause between sweeps when no recording had data.
const IDLE_SLEEP: Duration = Duration::from_millis(20);
/// Frames between header updates (1 s at 16 kHz).
const HEADER_UPDATE_FRAMES: u64 = 16_000;

/// A block of interleaved stereo samples, preceded by frames of silence the recorder could not
/// hand over in time.
pub(super) struct Block {
    /// Silent stereo frames to write before `samples`.
    pub(super) gap_frames: u64,
    /// Interleaved left (caller) and right (AI) samples.
    pub(super) samples: Vec<i16>,
}

/// Outcome of one recording, reported when its file is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingSummary {
    /// File written.
    pub path: PathBuf,
    /// Stereo frames in the file.
    pub frames: u64,
    /// Frames written as silence because the writer fell behind.
    pub dropped_frames: u64,
    /// Error that stopped writing early, if any.
    pub error: Option<String>,
}

/// A recording handed to the writer thread.
pub(super) struct Registration {
    pub(super) path: PathBuf,
    pub(super) wav: hound::WavWriter<BufWriter<File>>,
    pub(super) blocks: Receiver<Block>,
    /// Emptied buffers go back to the recorder so that it does not allocate per block.
    pub(super) recycle: SyncSender<Vec<i16>>,
    pub(super) done: SyncSender<RecordingSummary>,
}

struct Open {
    registration: Registration,
    summary: RecordingSummary,
    frames_since_header: u64,
}

impl Open {
    /// Writes every block waiting in the channel; returns whether any arrived and whether the
    /// recorder is gone.
    fn drain(&mut self) -> (bool, bool) {
        let mut worked = false;
        loop {
            match self.registration.blocks.try_recv() {
                Ok(block) => {
                    worked = true;
                    self.write(block);
                }
                Err(TryRecvError::Empty) => return (worked, false),
                Err(TryRecvError::Disconnected) => return (worked, true),
            }
        }
    }

    fn write(&mut self, mut block: Block) {
        if self.summary.error.is_none()
            && let Err(error) = self.write_samples(&block)
        {
            tracing::warn!(path = %self.summary.path.display(), %error, "recording write failed");
            metrics::WRITE_ERRORS.inc();
            self.summary.error = Some(error.to_string());
        }
        self.summary.dropped_frames += block.gap_frames;
        block.samples.clear();
        // The recorder may already be gone, or hold enough buffers: then the buffer is freed.
        let _ = self.registration.recycle.try_send(block.samples);
    }

    fn write_samples(&mut self, block: &Block) -> Result<(), hound::Error> {
        let wav = &mut self.registration.wav;
        for _ in 0..block.gap_frames * 2 {
            wav.write_sample(0i16)?;
        }
        for &sample in &block.samples {
            wav.write_sample(sample)?;
        }
        let frames = block.gap_frames + block.samples.len() as u64 / 2;
        self.summary.frames += frames;
        self.frames_since_header += frames;
        if self.frames_since_header >= HEADER_UPDATE_FRAMES {
            self.frames_since_header = 0;
            wav.flush()?;
        }
        Ok(())
    }

    fn close(self) {
        let Open {
            registration,
            mut summary,
            ..
        } = self;
        if let Err(error) = registration.wav.finalize()
            && summary.error.is_none()
        {
            tracing::warn!(path = %summary.path.display(), %error, "recording finalise failed");
            metrics::WRITE_ERRORS.inc();
            summary.error = Some(error.to_string());
        }
        metrics::ACTIVE_RECORDINGS.dec();
        tracing::info!(
            path = %summary.path.display(),
            frames = summary.frames,
            dropped_frames = summary.dropped_frames,
            "recording closed"
        );
        let _ = registration.done.try_send(summary);
    }
}

/// Runs the writer until every [`RecordingWriter`](super::RecordingWriter) handle is gone and
/// all recordings are closed.
pub(super) fn run(registrations: Receiver<Registration>) {
    let mut open: Vec<Open> = Vec::new();
    let mut accepting = true;
    loop {
        let mut worked = false;
        while accepting {
            match registrations.try_recv() {
                Ok(registration) => {
                    worked = true;
                    metrics::ACTIVE_RECORDINGS.inc();
                    let summary = RecordingSummary {
                        path: registration.path.clone(),
                        frames: 0,
                        dropped_frames: 0,
                        error: None,
                    };
                    open.push(Open {
                        registration,
                        summary,
                        frames_since_header: 0,
                    });
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => accepting = false,
            }
        }

        let mut index = 0;
        while index < open.len() {
            let (had_data, finished) = open[index].drain();
            worked |= had_data;
            if finished {
                open.swap_remove(index).close();
            } else {
                index += 1;
            }
        }

        if !accepting && open.is_empty() {
            return;
        }
        if !worked {
            std::thread::sleep(IDLE_SLEEP);
        }
    }
}
