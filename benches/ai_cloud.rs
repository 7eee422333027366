//! Costs of the cloud clients' own work, without any network: what a call spends per audio
//! frame, per streamed token and per second of synthesised speech. Run with
//! `cargo bench --bench ai_cloud`; it prints one line per figure.

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, Instant};

use voicegate::ai::cloud::deepgram::message;
use voicegate::ai::cloud::deepgram::session::{Output, Session, SessionConfig};
use voicegate::ai::cloud::llm_stream::ReplyParser;
use voicegate::ai::cloud::openai_chat::ChunkParser;
use voicegate::ai::cloud::pcm::{PcmDecoder, PcmEncoder, WireFormat};
use voicegate::ai::cloud::sse::SseDecoder;

/// Runs `work` `rounds` times and returns the mean time per round.
fn time(rounds: u32, mut work: impl FnMut()) -> Duration {
    for _ in 0..rounds / 10 {
        work();
    }
    let started = Instant::now();
    for _ in 0..rounds {
        work();
    }
    started.elapsed() / rounds
}

fn deepgram_frame() {
    let mut session = Session::new(SessionConfig {
        keepalive: Duration::from_secs(4),
        max_failures: 3,
        backoff: Duration::from_millis(200),
        bytes_per_second: 32_000,
        sample_bytes: 2,
        replay: Duration::from_secs(8),
        seed: 1,
    });
    let now = Instant::now();
    session.handle_connected(now);
    let mut encoder = PcmEncoder::new(WireFormat::Linear16 { rate: 16_000 }).unwrap();
    let frame = [1_000i16; 320];
    let mut bytes = Vec::with_capacity(640);
    let per_frame = time(200_000, || {
        bytes.clear();
        encoder.push(&frame, &mut bytes);
        session.handle_audio(now, &bytes);
        while let Some(output) = session.poll_output() {
            black_box(matches!(output, Output::SendAudio(_)));
        }
    });
    println!(
        "deepgram session, linear16 16 kHz: {:.0} ns per 20 ms frame ({:.4}% of one core per call)",
        per_frame.as_nanos(),
        per_frame.as_secs_f64() / 0.02 * 100.0
    );

    let mut encoder = PcmEncoder::new(WireFormat::Mulaw8k).unwrap();
    let per_frame = time(200_000, || {
        bytes.clear();
        encoder.push(&frame, &mut bytes);
        black_box(&bytes);
    });
    println!(
        "mu-law 8 kHz encoding with resampling: {:.0} ns per 20 ms frame",
        per_frame.as_nanos()
    );
}

fn deepgram_results() {
    let text = r#"{"type":"Results","channel_index":[0,1],"duration":1.2,"start":4.5,"is_final":true,"speech_final":true,"from_finalize":false,"channel":{"alternatives":[{"transcript":"my account number is four four two","confidence":0.98,"words":[{"word":"my","start":4.6,"end":4.7,"confidence":0.99,"punctuated_word":"My"},{"word":"account","start":4.7,"end":5.0,"confidence":0.99,"punctuated_word":"account"},{"word":"number","start":5.0,"end":5.2,"confidence":0.99,"punctuated_word":"number"},{"word":"is","start":5.2,"end":5.3,"confidence":0.99,"punctuated_word":"is"},{"word":"four","start":5.3,"end":5.4,"confidence":0.99,"punctuated_word":"four"},{"word":"four","start":5.4,"end":5.5,"confidence":0.99,"punctuated_word":"four"},{"word":"two","start":5.5,"end":5.7,"confidence":0.99,"punctuated_word":"two."}]}]},"metadata":{"request_id":"x"}}"#;
    let per_message = time(100_000, || {
        black_box(message::parse(black_box(text)).ok());
    });
    println!(
        "deepgram Results message (7 words): {:.1} us to parse",
        per_message.as_nanos() as f64 / 1_000.0
    );
}

fn openai_tokens() {
    let mut stream = Vec::new();
    for i in 0..1_000 {
        stream.extend_from_slice(
            format!(
                "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"word{i} \"}},\"finish_reason\":null}}]}}\n\n"
            )
            .as_bytes(),
        );
    }
    stream.extend_from_slice(b"data: [DONE]\n\n");
    let per_reply = time(200, || {
        let mut decoder = SseDecoder::default();
        let mut parser = ChunkParser::default();
        let mut out = VecDeque::new();
        for chunk in stream.chunks(1_400) {
            decoder.push(chunk).unwrap();
            while let Some(event) = decoder.poll_event() {
                parser.on_event(&event, &mut out).unwrap();
            }
        }
        black_box(out.len());
    });
    println!(
        "openai chat stream: {:.0} ns per token (SSE decoding and JSON parsing)",
        per_reply.as_nanos() as f64 / 1_000.0
    );
}

fn synthesis_audio() {
    let second: Vec<u8> = (0..24_000)
        .flat_map(|i| (((i % 48) as i16 - 24) * 500).to_le_bytes())
        .collect();
    let per_second = time(200, || {
        let mut decoder = PcmDecoder::new(WireFormat::Linear16 { rate: 24_000 }).unwrap();
        let mut out = Vec::with_capacity(16_000);
        for chunk in second.chunks(4_096) {
            decoder.push(chunk, &mut out);
        }
        black_box(out.len());
    });
    println!(
        "openai speech 24 kHz to 16 kHz: {:.0} us per second of audio ({:.0}x real time)",
        per_second.as_nanos() as f64 / 1_000.0,
        1.0 / per_second.as_secs_f64()
    );
}

fn main() {
    deepgram_frame();
    deepgram_results();
    openai_tokens();
    synthesis_audio();
}
