//! One answered call: hears the far end's audio frame by frame, drives the script, plays the
//! WAV, hangs up and fills in the report.

use std::time::{Duration, Instant};

use tokio::time::MissedTickBehavior;

use super::analysis::{Hearing, Span, utterances};
use super::dialer::{CallSettings, millis};
use super::report::{CallReport, RtpFigures};
use super::script::{Action, Script};
use crate::audio::{FRAME_MS, FRAME_SAMPLES, Frame, MediaEvent, PlayoutCommand, SegmentId};
use crate::media::engine::MediaSession;
use crate::media::session::StreamParams;
use crate::media::turn::BargeInSettings;
use crate::sip::{ActiveCall, CallEvent, EndReason};

/// The one playout segment that carries the caller's WAV.
const PLAY_SEGMENT: SegmentId = SegmentId(1);
/// How often the script is asked what to do.
const SCRIPT_TICK: Duration = Duration::from_millis(20);
/// Time allowed for the BYE transaction after the caller hangs up.
const BYE_TIMEOUT: Duration = Duration::from_secs(5);

/// An answered call with its running media session.
pub struct Listening {
    /// When the 200 OK arrived; every time in the report counts from here.
    pub answer: Instant,
    /// The SIP side of the call.
    pub call: ActiveCall,
    /// The caller's media.
    pub session: MediaSession,
    /// Barge-in settings for new stream parameters after a re-INVITE.
    pub barge_in: BargeInSettings,
}

/// Audio heard and play times of one call so far.
#[derive(Default)]
struct Log {
    hearing: Hearing,
    /// Everything heard as 16 kHz PCM, with gaps filled by silence so that sample positions
    /// match times from the answer.
    recording: Vec<i16>,
    play_start_ms: Option<f64>,
    play_end_ms: Option<f64>,
}

impl Log {
    /// Stores one heard frame. Frames leave the worker on a 20 ms grid but may reach this task
    /// in bursts, so each frame takes the later of its arrival slot and the slot after the
    /// previous frame.
    fn hear(&mut self, now_ms: f64, frame: &Frame, keep_audio: bool) {
        let frame_ms = f64::from(FRAME_MS);
        let arrival_slot = (now_ms / frame_ms).floor().max(0.0) as usize;
        let slot = arrival_slot.max(self.hearing.frames());
        self.hearing.push(slot as f64 * frame_ms, frame);
        if keep_audio {
            self.recording.resize(slot * FRAME_SAMPLES, 0);
            self.recording.extend_from_slice(frame);
        }
    }
}

/// Runs the call until the script or the far end ends it, then fills in `report`.
pub async fn run(mut call: Listening, settings: &CallSettings, report: &mut CallReport) {
    let mut script = Script::new(settings.script.clone());
    let mut log = Log::default();
    let keep_audio = settings.record.is_some();
    let mut ticker = tokio::time::interval(SCRIPT_TICK);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);

    loop {
        tokio::select! {
            event = call.session.events.recv() => {
                let now_ms = millis(call.answer.elapsed());
                match event {
                    Some(event) => on_media_event(&mut log, &mut script, &call, event, now_ms, keep_audio),
                    None => {
                        report.error = Some("the media session stopped".into());
                        break;
                    }
                }
            }
            event = call.call.events.recv() => match event {
                Some(CallEvent::Ended(reason)) => {
                    note_end(report, &reason);
                    break;
                }
                Some(CallEvent::MediaChanged(negotiated)) => {
                    let params = StreamParams {
                        simulated_echo: settings.echo,
                        ..StreamParams::from_negotiated(&negotiated, false, call.barge_in)
                    };
                    if let Err(error) = call.session.update(params) {
                        tracing::warn!(%error, call_id = %call.call.call_id, "test caller could not apply a media change");
                    }
                }
                Some(_) => {}
                None => {
                    report.error = Some("the SIP stack stopped during the call".into());
                    break;
                }
            },
            _ = ticker.tick() => {
                let now_ms = millis(call.answer.elapsed());
                match script.poll(now_ms, &log.hearing) {
                    Action::Wait => {}
                    Action::Play => start_play(&call, settings).await,
                    Action::Hangup(cause) => {
                        tracing::debug!(?cause, "test caller hangs up");
                        call.call.control.hangup(cause.reason());
                        report.ended_by = "caller".into();
                        wait_for_end(&mut call, report).await;
                        break;
                    }
                }
            }
        }
    }

    report.duration_ms = Some(millis(call.answer.elapsed()));
    let stats = call.session.stop().await;
    report.rtp = RtpFigures {
        received: stats.received,
        lost: u64::try_from(stats.lost).unwrap_or(0),
        jitter_ms: millis(stats.jitter),
    };
    if report.rtp.received == 0 && report.error.is_none() {
        report.error = Some("no RTP received".into());
    }
    analyse(&log, settings, report);
    if let Some(path) = &settings.record
        && let Err(error) =
            crate::media::wav::write_mono(path, crate::audio::SAMPLE_RATE, &log.recording)
    {
        report.error = Some(format!("writing the recording failed: {error}"));
    }
}

fn on_media_event(
    log: &mut Log,
    script: &mut Script,
    call: &Listening,
    event: MediaEvent,
    now_ms: f64,
    keep_audio: bool,
) {
    match event {
        MediaEvent::Audio(frame) => log.hear(now_ms, &frame, keep_audio),
        MediaEvent::SegmentStarted { segment, at } if segment == PLAY_SEGMENT => {
            log.play_start_ms = Some(millis(at.saturating_duration_since(call.answer)));
        }
        MediaEvent::SegmentPlayed { segment, .. } if segment == PLAY_SEGMENT => {
            log.play_end_ms = Some(now_ms);
            script.play_ended(now_ms);
        }
        MediaEvent::Timeout => tracing::debug!("test caller received no RTP for a while"),
        _ => {}
    }
}

async fn start_play(call: &Listening, settings: &CallSettings) {
    let Some(pcm) = &settings.play else {
        return;
    };
    let audio = PlayoutCommand::Audio {
        segment: PLAY_SEGMENT,
        pcm: pcm.to_vec(),
        interruptible: false,
    };
    // The queue only fills when the worker has stopped; the session's end shows up as a
    // closed event channel.
    let _ = call.session.playout.send(audio).await;
    let _ = call
        .session
        .playout
        .send(PlayoutCommand::EndSegment(PLAY_SEGMENT))
        .await;
}

/// Waits for the BYE transaction to end the call.
async fn wait_for_end(call: &mut Listening, report: &mut CallReport) {
    let ended = tokio::time::timeout(BYE_TIMEOUT, async {
        while let Some(event) = call.call.events.recv().await {
            if let CallEvent::Ended(reason) = event {
                return Some(reason);
            }
        }
        None
    })
    .await;
    match ended {
        Ok(Some(reason)) => note_end(report, &reason),
        Ok(None) => {}
        Err(_) => report.error = Some("no response to BYE".into()),
    }
}

fn note_end(report: &mut CallReport, reason: &EndReason) {
    match reason {
        EndReason::RemoteHangup(_) => report.ended_by = "server".into(),
        EndReason::LocalHangup(_) => report.ended_by = "caller".into(),
        other => {
            report.ended_by = "caller".into();
            report.error = Some(format!("call ended: {other}"));
        }
    }
}

/// Derives first audio, turns and barge-in figures from what was heard and played.
fn analyse(log: &Log, settings: &CallSettings, report: &mut CallReport) {
    report.first_audio_ms = log.hearing.first_audio_ms();
    let (Some(pcm), Some(start)) = (&settings.play, log.play_start_ms) else {
        return;
    };
    let limit_ms = log.play_end_ms.or(report.duration_ms);
    let spoken: Vec<Span> = utterances(pcm)
        .into_iter()
        .map(|span| Span {
            start_ms: span.start_ms + start,
            end_ms: span.end_ms + start,
        })
        // Only what was played before the WAV ended or the call did.
        .filter(|span| limit_ms.is_none_or(|limit| span.start_ms < limit))
        .collect();
    report.turns = log.hearing.turns(&spoken);
    if settings.script.barge_in_at_ms.is_some()
        && let Some(first) = spoken.first()
    {
        report.barge_in = log.hearing.barge_in(first.start_ms);
    }
}
