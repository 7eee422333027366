//! `voicegate call` and `voicegate loadtest`: argument checks, the runtime and the output.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::CliError;
use crate::caller::echo::parse_echo;
use crate::caller::{
    CallReport, CallSettings, Dialer, LoadSettings, LoadSummary, Progress, ScriptSettings, Target,
};
use crate::sip::Transport;
use crate::sip::sdp::CodecName;

/// Codec the caller offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CodecArg {
    /// G.711 mu-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
    /// G.722 wideband.
    G722,
    /// Opus.
    Opus,
}

impl From<CodecArg> for CodecName {
    fn from(codec: CodecArg) -> Self {
        match codec {
            CodecArg::Pcmu => CodecName::Pcmu,
            CodecArg::Pcma => CodecName::Pcma,
            CodecArg::G722 => CodecName::G722,
            CodecArg::Opus => CodecName::Opus,
        }
    }
}

/// SIP transport for the INVITE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TransportArg {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

impl From<TransportArg> for Transport {
    fn from(transport: TransportArg) -> Self {
        match transport {
            TransportArg::Udp => Transport::Udp,
            TransportArg::Tcp => Transport::Tcp,
        }
    }
}

/// Options shared by `call` and `loadtest`.
#[derive(Debug, Clone, Args)]
pub struct CallerArgs {
    /// Number to call: a SIP URI such as sip:+15551230000@127.0.0.1:5060, or host:port. The
    /// host must be an IP address.
    #[arg(value_name = "URI")]
    pub uri: String,

    /// WAV file played as the caller's voice (any rate, PCM, float or G.711; resampled to
    /// 16 kHz).
    #[arg(long, value_name = "WAV")]
    pub play: Option<PathBuf>,

    /// Codec to offer.
    #[arg(long, value_enum, default_value = "pcmu")]
    pub codec: CodecArg,

    /// SIP transport, unless the URI has a ;transport= parameter.
    #[arg(long, value_enum, default_value = "udp")]
    pub transport: TransportArg,

    /// Seconds to wait for a greeting before talking (or hanging up without --play).
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    pub greeting_timeout: f64,

    /// Seconds to wait for a reply after the play ends before hanging up.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub reply_timeout: f64,

    /// Send what the caller hears back as echo: GAIN_DB is its gain in dB (-40 to 0) and
    /// DELAY_MS its delay in milliseconds (0 to 500), for example -12:150. The echo is added to
    /// the --play audio.
    #[arg(long, value_name = "GAIN_DB:DELAY_MS", allow_hyphen_values = true)]
    pub echo: Option<String>,

    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

/// `voicegate call`.
#[derive(Debug, Clone, Args)]
pub struct CallArgs {
    /// Options shared with `loadtest`.
    #[command(flatten)]
    pub common: CallerArgs,

    /// Write what the caller heard to this WAV file (16 kHz mono).
    #[arg(long, value_name = "WAV")]
    pub record: Option<PathBuf>,

    /// Start the play this many seconds after the answer instead of after the greeting, to
    /// talk over the AI and measure the barge-in.
    #[arg(long, value_name = "SECONDS")]
    pub barge_in_at: Option<f64>,

    /// Hang up this many seconds after the answer.
    #[arg(long, value_name = "SECONDS")]
    pub hangup_after: Option<f64>,
}

/// `voicegate loadtest`.
#[derive(Debug, Clone, Args)]
pub struct LoadtestArgs {
    /// Options shared with `call`.
    #[command(flatten)]
    pub common: CallerArgs,

    /// Calls to place in total.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub calls: u64,

    /// New calls per second.
    #[arg(long, value_name = "R", default_value_t = 10.0)]
    pub rate: f64,

    /// Calls up at once at most.
    #[arg(long, value_name = "C", default_value_t = 10)]
    pub concurrency: usize,

    /// Hang up each call this many seconds after its answer (without it, each call runs the
    /// default script: greeting, play, reply).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
}

/// Runs `voicegate call`: exits 0 when the call was answered and ran without error.
pub fn run_call(args: CallArgs) -> Result<(), CliError> {
    let mut settings = call_settings(&args.common)?;
    settings.script.barge_in_at_ms = args
        .barge_in_at
        .map(|secs| seconds_ms("--barge-in-at", secs, true))
        .transpose()?;
    settings.script.hangup_after_ms = args
        .hangup_after
        .map(|secs| seconds_ms("--hangup-after", secs, false))
        .transpose()?;
    if let (Some(at), None) = (args.barge_in_at, &args.common.play) {
        return Err(usage(
            "--barge-in-at",
            &at.to_string(),
            "it starts the play, so give --play WAV as well",
        ));
    }
    if let Some(path) = &args.record {
        check_output_path("--record", path)?;
    }
    settings.record = args.record;
    let json = args.common.json;

    let report = block_on(async move {
        let dialer = Dialer::start(settings.target.addr, 1)
            .await
            .map_err(|error| CliError::Runtime(error.into()))?;
        let call = dialer.call(&settings);
        tokio::pin!(call);
        let report = tokio::select! {
            report = &mut call => report,
            _ = tokio::signal::ctrl_c() => {
                // Shutting down sends BYE, which ends the call and lets it report.
                dialer.shutdown().await;
                call.await
            }
        };
        dialer.shutdown().await;
        Ok(report)
    })?;

    if json {
        println!("{}", to_json(&report)?);
    } else {
        print!("{}", describe_call(&report));
    }
    match failure(&report) {
        Some(failure) => Err(CliError::Runtime(anyhow::anyhow!("call failed: {failure}"))),
        None => Ok(()),
    }
}

/// Runs `voicegate loadtest`: exits 0 when every call succeeded.
pub fn run_loadtest(args: LoadtestArgs) -> Result<(), CliError> {
    let mut call = call_settings(&args.common)?;
    call.script.hangup_after_ms = args
        .duration
        .map(|secs| seconds_ms("--duration", secs, false))
        .transpose()?;
    if args.calls == 0 {
        return Err(usage("--calls", "0", "give at least 1 call"));
    }
    if !(args.rate.is_finite() && args.rate > 0.0) {
        return Err(usage(
            "--rate",
            &args.rate.to_string(),
            "give a number of calls per second greater than 0",
        ));
    }
    if args.concurrency == 0 {
        return Err(usage("--concurrency", "0", "give at least 1"));
    }
    let settings = LoadSettings {
        calls: args.calls,
        rate: args.rate,
        concurrency: args.concurrency,
        call,
    };
    let json = args.common.json;

    let summary = block_on(async move {
        let workers = std::thread::available_parallelism().map_or(1, usize::from);
        let dialer = Dialer::start(settings.call.target.addr, workers)
            .await
            .map_err(|error| CliError::Runtime(error.into()))?;
        let dialer = Arc::new(dialer);
        let interrupt = async {
            // Without a signal handler the test runs to the end.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let summary =
            crate::caller::load::run(Arc::clone(&dialer), settings, interrupt, print_progress)
                .await;
        dialer.shutdown().await;
        Ok(summary)
    })?;

    if json {
        println!("{}", to_json(&summary)?);
    } else {
        print!("{}", describe_load(&summary));
    }
    if summary.failed > 0 {
        return Err(CliError::Runtime(anyhow::anyhow!(
            "{} of {} calls failed",
            summary.failed,
            summary.attempted
        )));
    }
    Ok(())
}

/// Checks the shared options and reads the WAV.
fn call_settings(args: &CallerArgs) -> Result<CallSettings, CliError> {
    let target = Target::parse(&args.uri).map_err(|error| CliError::Usage(error.to_string()))?;
    let play = match &args.play {
        Some(path) => Some(Arc::new(read_wav(path)?)),
        None => None,
    };
    let echo = match &args.echo {
        Some(text) => {
            Some(parse_echo(text).map_err(|error| usage("--echo", text, &error.to_string()))?)
        }
        None => None,
    };
    let script = ScriptSettings {
        play: play.is_some(),
        greeting_timeout_ms: seconds_ms("--greeting-timeout", args.greeting_timeout, true)?,
        reply_timeout_ms: seconds_ms("--reply-timeout", args.reply_timeout, true)?,
        ..ScriptSettings::default()
    };
    Ok(CallSettings {
        target,
        transport: args.transport.into(),
        codec: args.codec.into(),
        play,
        record: None,
        script,
        echo,
    })
}

fn read_wav(path: &Path) -> Result<Vec<i16>, CliError> {
    let pcm = crate::media::wav::read_16k(path).map_err(|error| {
        CliError::Usage(format!(
            "invalid --play `{}`: {error}; give a WAV file (PCM, float or G.711, any rate)",
            path.display()
        ))
    })?;
    if pcm.is_empty() {
        return Err(usage(
            "--play",
            &path.display().to_string(),
            "the WAV file has no samples; give one with speech",
        ));
    }
    Ok(pcm)
}

fn check_output_path(option: &str, path: &Path) -> Result<(), CliError> {
    let parent = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty());
    match parent {
        Some(parent) if !parent.is_dir() => Err(usage(
            option,
            &path.display().to_string(),
            &format!("directory `{}` does not exist", parent.display()),
        )),
        _ => Ok(()),
    }
}

/// Converts seconds to milliseconds, rejecting negative, infinite and (unless `zero_ok`)
/// zero values.
fn seconds_ms(option: &str, seconds: f64, zero_ok: bool) -> Result<f64, CliError> {
    let valid = seconds.is_finite() && (seconds > 0.0 || (zero_ok && seconds == 0.0));
    if !valid {
        let bound = if zero_ok {
            "0 or more"
        } else {
            "greater than 0"
        };
        return Err(usage(
            option,
            &seconds.to_string(),
            &format!("give a number of seconds {bound}"),
        ));
    }
    Ok(seconds * 1_000.0)
}

fn usage(option: &str, value: &str, fix: &str) -> CliError {
    CliError::Usage(format!("invalid {option} `{value}`: {fix}"))
}

fn block_on<T>(
    work: impl std::future::Future<Output = Result<T, CliError>>,
) -> Result<T, CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| CliError::Runtime(anyhow::anyhow!("cannot start the runtime: {error}")))?;
    runtime.block_on(work)
}

fn to_json(value: &impl serde::Serialize) -> Result<String, CliError> {
    serde_json::to_string(value)
        .map_err(|error| CliError::Runtime(anyhow::anyhow!("cannot encode JSON: {error}")))
}

/// Names why a call counts as failed: its final status when not answered, else its error.
fn failure(report: &CallReport) -> Option<String> {
    if !report.answered {
        return Some(match (&report.error, report.status) {
            (Some(error), 0) => error.clone(),
            _ => format!("{} {}", report.status, report.reason),
        });
    }
    report.error.clone()
}

fn print_progress(elapsed: Duration, progress: Progress) {
    eprintln!(
        "loadtest {:>4} s: {} started, {} active, {} succeeded, {} failed",
        elapsed.as_secs(),
        progress.started,
        progress.active,
        progress.succeeded,
        progress.failed
    );
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_string(), |ms| format!("{ms:.0} ms"))
}

/// Formats a call report for people.
pub fn describe_call(report: &CallReport) -> String {
    use std::fmt::Write;

    let mut out = String::new();
    if !report.answered {
        let status = match (&report.error, report.status) {
            (Some(error), 0) => error.clone(),
            _ => format!("{} {}", report.status, report.reason),
        };
        let _ = writeln!(out, "call not answered: {status}");
        return out;
    }
    let _ = writeln!(
        out,
        "call {}: {} {}, answered in {} ({})",
        report.call_id,
        report.status,
        report.reason,
        ms(report.setup_ms),
        report.codec
    );
    let _ = writeln!(
        out,
        "first audio:  {} after the answer",
        ms(report.first_audio_ms)
    );
    for (index, turn) in report.turns.iter().enumerate() {
        let _ = writeln!(
            out,
            "turn {}:       speech ended at {}, reply at {} ({})",
            index + 1,
            ms(Some(turn.speech_end_ms)),
            ms(turn.reply_start_ms),
            ms(turn.reply_ms)
        );
    }
    if let Some(barge_in) = &report.barge_in {
        let _ = writeln!(
            out,
            "barge-in:     speech onset at {}, AI silent at {} (cut {})",
            ms(Some(barge_in.onset_ms)),
            ms(Some(barge_in.silence_ms)),
            ms(Some(barge_in.cut_ms))
        );
    }
    let _ = writeln!(
        out,
        "rtp:          {} received, {} lost, jitter {:.1} ms",
        report.rtp.received, report.rtp.lost, report.rtp.jitter_ms
    );
    let _ = writeln!(
        out,
        "ended by {} after {}",
        report.ended_by,
        ms(report.duration_ms)
    );
    if let Some(error) = &report.error {
        let _ = writeln!(out, "error:        {error}");
    }
    out
}

/// Formats a load test summary for people.
pub fn describe_load(summary: &LoadSummary) -> String {
    use std::fmt::Write;

    let mut out = String::new();
    let _ = writeln!(
        out,
        "calls:    {} attempted, {} answered, {} failed in {:.1} s",
        summary.attempted, summary.answered, summary.failed, summary.elapsed_secs
    );
    let _ = writeln!(
        out,
        "setup:    p50 {}, p95 {}",
        ms(summary.setup_ms_p50),
        ms(summary.setup_ms_p95)
    );
    let _ = writeln!(
        out,
        "reply:    p50 {}, p95 {}",
        ms(summary.reply_ms_p50),
        ms(summary.reply_ms_p95)
    );
    let _ = writeln!(
        out,
        "rtp:      {:.2}% lost, jitter p95 {}",
        summary.rtp_loss_pct,
        summary
            .jitter_ms_p95
            .map_or_else(|| "-".to_string(), |ms| format!("{ms:.1} ms"))
    );
    for (failure, count) in &summary.failures {
        let _ = writeln!(out, "failed:   {count} × {failure}");
    }
    out
}
