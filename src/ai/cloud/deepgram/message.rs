//! Deepgram live streaming messages: the request URL, the client's control messages, and the
//! server's JSON messages.

use serde::Deserialize;
use url::Url;

/// Text frame that keeps an idle connection open (Deepgram closes it after about 10 s without
/// audio or a KeepAlive).
pub const KEEP_ALIVE: &str = r#"{"type":"KeepAlive"}"#;
/// Text frame that requests final results for all audio sent so far.
pub const FINALIZE: &str = r#"{"type":"Finalize"}"#;
/// Text frame that requests the server to flush, send Metadata and close.
pub const CLOSE_STREAM: &str = r#"{"type":"CloseStream"}"#;

/// Query parameters of a `/v1/listen` connection.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenParams {
    /// Model name, for example `nova-2-phonecall`.
    pub model: String,
    /// `linear16` or `mulaw`.
    pub encoding: String,
    /// Sample rate in hertz.
    pub sample_rate: u32,
    /// Ask for interim results.
    pub interim_results: bool,
    /// Endpointing silence in milliseconds; 0 sends `endpointing=false`.
    pub endpointing_ms: u32,
    /// UtteranceEnd gap in milliseconds; 0 leaves it out.
    pub utterance_end_ms: u32,
    /// Ask for smart formatting.
    pub smart_format: bool,
    /// BCP 47 language; empty leaves it to the model.
    pub language: String,
    /// Words to boost.
    pub keywords: Vec<String>,
}

/// Builds the connection URL from the configured endpoint and `params`.
pub fn listen_url(endpoint: &str, params: &ListenParams) -> Result<Url, url::ParseError> {
    let mut url = Url::parse(endpoint)?;
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("model", &params.model)
            .append_pair("encoding", &params.encoding)
            .append_pair("sample_rate", &params.sample_rate.to_string())
            .append_pair("channels", "1")
            .append_pair("interim_results", bool_text(params.interim_results))
            .append_pair("smart_format", bool_text(params.smart_format));
        if params.endpointing_ms == 0 {
            query.append_pair("endpointing", "false");
        } else {
            query.append_pair("endpointing", &params.endpointing_ms.to_string());
        }
        // UtteranceEnd works on interim results, so the server needs both.
        if params.utterance_end_ms > 0 && params.interim_results {
            query.append_pair("utterance_end_ms", &params.utterance_end_ms.to_string());
        }
        if !params.language.is_empty() {
            query.append_pair("language", &params.language);
        }
        // Nova-3 models take `keyterm`; earlier models take `keywords`.
        let keyword_param = if params.model.starts_with("nova-3") {
            "keyterm"
        } else {
            "keywords"
        };
        for keyword in params.keywords.iter().filter(|k| !k.trim().is_empty()) {
            query.append_pair(keyword_param, keyword.trim());
        }
    }
    Ok(url)
}

fn bool_text(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}

/// One recognised word, with times in seconds from the start of the connection's audio.
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    /// The word, formatted when smart formatting is on.
    pub text: String,
    /// Start time in seconds.
    pub start: f64,
    /// End time in seconds.
    pub end: f64,
}

/// A `Results` message: the transcript of one stretch of audio.
#[derive(Debug, Clone, PartialEq)]
pub struct Results {
    /// Start of the stretch, in seconds from the start of the connection's audio.
    pub start: f64,
    /// Length of the stretch in seconds.
    pub duration: f64,
    /// Whether this text will not change any more.
    pub is_final: bool,
    /// Whether the server detected the end of speech (endpointing).
    pub speech_final: bool,
    /// Whether this result is the reply to a Finalize message.
    pub from_finalize: bool,
    /// Transcript of the first alternative.
    pub transcript: String,
    /// Words of the first alternative.
    pub words: Vec<Word>,
}

/// A message from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage {
    /// Transcript.
    Results(Results),
    /// A gap after the last finalised word.
    UtteranceEnd {
        /// End of the last word, in seconds.
        last_word_end: f64,
    },
    /// Speech began (only sent with `vad_events=true`).
    SpeechStarted {
        /// Time in seconds.
        timestamp: f64,
    },
    /// Summary sent before the server closes.
    Metadata {
        /// Request id for support tickets.
        request_id: String,
    },
    /// An error the server reports before closing.
    Error {
        /// Description.
        message: String,
    },
    /// A message type this client does not know.
    Other(String),
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct RawResults {
    start: f64,
    duration: f64,
    #[serde(default)]
    is_final: bool,
    #[serde(default)]
    speech_final: bool,
    #[serde(default)]
    from_finalize: bool,
    channel: RawChannel,
}

#[derive(Deserialize)]
struct RawChannel {
    #[serde(default)]
    alternatives: Vec<RawAlternative>,
}

#[derive(Deserialize)]
struct RawAlternative {
    #[serde(default)]
    transcript: String,
    #[serde(default)]
    words: Vec<RawWord>,
}

#[derive(Deserialize)]
struct RawWord {
    word: String,
    start: f64,
    end: f64,
    #[serde(default)]
    punctuated_word: Option<String>,
}

#[derive(Deserialize)]
struct RawUtteranceEnd {
    #[serde(default)]
    last_word_end: f64,
}

#[derive(Deserialize)]
struct RawSpeechStarted {
    #[serde(default)]
    timestamp: f64,
}

#[derive(Deserialize)]
struct RawMetadata {
    #[serde(default)]
    request_id: String,
}

#[derive(Deserialize)]
struct RawError {
    #[serde(default)]
    description: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    variant: String,
}

/// Parses a server text frame. Returns a description of the problem for invalid JSON, a
/// missing field or a time that is negative or not finite.
pub fn parse(text: &str) -> Result<ServerMessage, String> {
    let envelope: Envelope =
        serde_json::from_str(text).map_err(|err| format!("message is not valid JSON: {err}"))?;
    let message = match envelope.kind.as_str() {
        "Results" => ServerMessage::Results(parse_results(text)?),
        "UtteranceEnd" => {
            let raw: RawUtteranceEnd = from_json(text)?;
            ServerMessage::UtteranceEnd {
                last_word_end: raw.last_word_end,
            }
        }
        "SpeechStarted" => {
            let raw: RawSpeechStarted = from_json(text)?;
            ServerMessage::SpeechStarted {
                timestamp: raw.timestamp,
            }
        }
        "Metadata" => {
            let raw: RawMetadata = from_json(text)?;
            ServerMessage::Metadata {
                request_id: raw.request_id,
            }
        }
        "Error" => {
            let raw: RawError = from_json(text)?;
            let message = [raw.variant, raw.description, raw.message]
                .into_iter()
                .filter(|part| !part.is_empty())
                .collect::<Vec<_>>()
                .join(": ");
            ServerMessage::Error { message }
        }
        other => ServerMessage::Other(other.to_string()),
    };
    Ok(message)
}

fn from_json<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|err| format!("invalid message: {err}"))
}

fn parse_results(text: &str) -> Result<Results, String> {
    let raw: RawResults = from_json(text)?;
    check_time("start", raw.start)?;
    check_time("duration", raw.duration)?;
    let alternative = raw.channel.alternatives.into_iter().next();
    let (transcript, raw_words) = match alternative {
        Some(alternative) => (alternative.transcript, alternative.words),
        None => (String::new(), Vec::new()),
    };
    let mut words = Vec::with_capacity(raw_words.len());
    for word in raw_words {
        check_time("word start", word.start)?;
        check_time("word end", word.end)?;
        words.push(Word {
            text: word.punctuated_word.unwrap_or(word.word),
            start: word.start,
            end: word.end,
        });
    }
    Ok(Results {
        start: raw.start,
        duration: raw.duration,
        is_final: raw.is_final,
        speech_final: raw.speech_final,
        from_finalize: raw.from_finalize,
        transcript: transcript.trim().to_string(),
        words,
    })
}

fn check_time(name: &str, value: f64) -> Result<(), String> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(format!("{name} {value} is not a time in seconds"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> ListenParams {
        ListenParams {
            model: "nova-2-phonecall".into(),
            encoding: "linear16".into(),
            sample_rate: 16_000,
            interim_results: true,
            endpointing_ms: 300,
            utterance_end_ms: 1_000,
            smart_format: true,
            language: "en-US".into(),
            keywords: vec!["Corner Bakery".into(), " ".into()],
        }
    }

    #[test]
    fn url_has_every_parameter() {
        let url = listen_url("wss://api.deepgram.com/v1/listen", &params()).unwrap();
        assert_eq!(
            url.as_str(),
            "wss://api.deepgram.com/v1/listen?model=nova-2-phonecall&encoding=linear16\
             &sample_rate=16000&channels=1&interim_results=true&smart_format=true\
             &endpointing=300&utterance_end_ms=1000&language=en-US&keywords=Corner+Bakery"
        );
    }

    #[test]
    fn nova3_uses_keyterm_and_endpointing_off() {
        let mut params = params();
        params.model = "nova-3".into();
        params.endpointing_ms = 0;
        params.interim_results = false;
        let url = listen_url("ws://127.0.0.1:1/v1/listen", &params).unwrap();
        let query = url.query().unwrap();
        assert!(query.contains("keyterm=Corner+Bakery"), "{query}");
        assert!(query.contains("endpointing=false"), "{query}");
        assert!(!query.contains("utterance_end_ms"), "{query}");
    }

    #[test]
    fn parses_results() {
        let text = r#"{"type":"Results","channel_index":[0,1],"duration":1.5,"start":2.25,
            "is_final":true,"speech_final":false,"from_finalize":true,
            "channel":{"alternatives":[{"transcript":"hello there","confidence":0.9,
            "words":[{"word":"hello","start":2.3,"end":2.6,"confidence":0.9,"punctuated_word":"Hello"},
                     {"word":"there","start":2.7,"end":3.0,"confidence":0.9}]}]},
            "metadata":{"request_id":"r"}}"#;
        let ServerMessage::Results(results) = parse(text).unwrap() else {
            panic!("not results")
        };
        assert_eq!(results.start, 2.25);
        assert_eq!(results.duration, 1.5);
        assert!(results.is_final);
        assert!(!results.speech_final);
        assert!(results.from_finalize);
        assert_eq!(results.transcript, "hello there");
        assert_eq!(
            results.words,
            vec![
                Word {
                    text: "Hello".into(),
                    start: 2.3,
                    end: 2.6
                },
                Word {
                    text: "there".into(),
                    start: 2.7,
                    end: 3.0
                },
            ]
        );
    }

    #[test]
    fn parses_other_message_types() {
        assert_eq!(
            parse(r#"{"type":"UtteranceEnd","channel":[0,1],"last_word_end":3.1}"#),
            Ok(ServerMessage::UtteranceEnd { last_word_end: 3.1 })
        );
        assert_eq!(
            parse(r#"{"type":"SpeechStarted","channel":[0],"timestamp":0.5}"#),
            Ok(ServerMessage::SpeechStarted { timestamp: 0.5 })
        );
        assert_eq!(
            parse(r#"{"type":"Metadata","request_id":"abc","duration":1.0}"#),
            Ok(ServerMessage::Metadata {
                request_id: "abc".into()
            })
        );
        assert_eq!(
            parse(r#"{"type":"Error","variant":"NET-0001","description":"no audio"}"#),
            Ok(ServerMessage::Error {
                message: "NET-0001: no audio".into()
            })
        );
        assert_eq!(
            parse(r#"{"type":"Future"}"#),
            Ok(ServerMessage::Other("Future".into()))
        );
    }

    #[test]
    fn malformed_messages_are_errors() {
        let cases = [
            "",
            "not json",
            "[1,2]",
            r#"{"no_type":1}"#,
            r#"{"type":"Results"}"#,
            r#"{"type":"Results","start":"x","duration":1,"channel":{}}"#,
            r#"{"type":"Results","start":-1,"duration":1,"channel":{}}"#,
            r#"{"type":"Results","start":0,"duration":1,"channel":{"alternatives":[{"words":[{"word":"a","start":1e999,"end":1}]}]}}"#,
        ];
        for text in cases {
            assert!(parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn truncated_and_mutated_messages_do_not_panic() {
        let text = r#"{"type":"Results","start":0.5,"duration":1,"is_final":true,"channel":{"alternatives":[{"transcript":"a b","words":[{"word":"a","start":0.6,"end":0.7},{"word":"b","start":0.8,"end":0.9}]}]}}"#;
        for cut in 0..text.len() {
            let _ = parse(&text[..cut]);
        }
        let bytes = text.as_bytes();
        for position in 0..bytes.len() {
            for replacement in [b'"', b'{', b'}', b'-', b'9', b'e', b'\\'] {
                let mut mutated = bytes.to_vec();
                mutated[position] = replacement;
                let _ = parse(&String::from_utf8_lossy(&mutated));
            }
        }
    }

    #[test]
    fn results_without_alternatives_are_empty() {
        let ServerMessage::Results(results) =
            parse(r#"{"type":"Results","start":0,"duration":1,"channel":{"alternatives":[]}}"#)
                .unwrap()
        else {
            panic!("not results")
        };
        assert!(results.transcript.is_empty());
        assert!(results.words.is_empty());
    }
}
