//! HTTP plumbing shared by the provider clients: one pooled `reqwest` client, a first-byte
//! deadline on every request, retries of failures that produced no output, mapping of error
//! statuses to [`ProviderError`], and response bodies read with an idle deadline.
//!
//! Dropping a response or a [`BodyReader`] before the end closes its connection, which is how
//! a barge-in cancels a synthesis or a reply at the provider.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, Response, StatusCode};

use super::key::ApiKey;
use super::metrics;
use crate::ai::ProvidersConfig;
use crate::ai::provider::ProviderError;

/// Maximum error body read to build a message, in bytes.
const ERROR_BODY_LIMIT: usize = 8 * 1024;
/// Maximum provider message kept in an error, in characters.
const ERROR_MESSAGE_CHARS: usize = 300;
/// Wait before the first retry when the provider gives no `Retry-After`; it doubles per retry.
const RETRY_BASE: Duration = Duration::from_millis(100);
/// `User-Agent` of every provider request.
pub const USER_AGENT: &str = concat!("voicegate/", env!("CARGO_PKG_VERSION"));

/// Timeouts and retry limits shared by the HTTP provider clients.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    /// Time to open a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Time from sending a request to the response headers.
    pub first_byte_timeout: Duration,
    /// Time a streamed body may send nothing before it is abandoned.
    pub read_timeout: Duration,
    /// Total time of a request whose response is not streamed.
    pub request_timeout: Duration,
    /// Retries after a failure that produced no output.
    pub max_retries: u32,
    /// Maximum `Retry-After` worth waiting for.
    pub max_retry_after: Duration,
}

impl HttpSettings {
    /// Reads the settings from `[providers]`.
    pub fn from_config(config: &ProvidersConfig) -> Self {
        Self {
            connect_timeout: Duration::from_secs(config.connect_timeout_secs),
            first_byte_timeout: Duration::from_millis(config.first_byte_timeout_ms),
            read_timeout: Duration::from_secs(config.read_timeout_secs),
            request_timeout: Duration::from_secs(config.request_timeout_secs),
            max_retries: config.max_retries,
            max_retry_after: Duration::from_secs(config.max_retry_after_secs),
        }
    }
}

/// A pooled HTTP client with the provider settings. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    settings: HttpSettings,
}

impl HttpClient {
    /// Builds the client. Fails only when the TLS backend cannot start.
    pub fn new(settings: HttpSettings) -> Result<Self, ProviderError> {
        let client = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(USER_AGENT)
            .build()
            .map_err(|err| ProviderError::Config {
                provider: "http",
                message: format!("cannot build the HTTP client: {err}"),
            })?;
        Ok(Self { client, settings })
    }

    /// Returns the underlying `reqwest` client, to build requests with.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Returns the timeouts in use.
    pub fn settings(&self) -> &HttpSettings {
        &self.settings
    }

    /// Sends the request that `build` makes (called again for each attempt) and returns the
    /// response once its headers arrived with a success status. Connection failures, 429 and
    /// 5xx are retried up to `max_retries` times. A deadline that passes is not retried,
    /// because the caller's own deadline is usually shorter than a second attempt.
    pub async fn send(
        &self,
        provider: &'static str,
        key: &ApiKey,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, ProviderError> {
        self.send_within(provider, key, self.settings.first_byte_timeout, build)
            .await
    }

    /// Like [`HttpClient::send`], with `deadline` for the response headers instead of the
    /// first-byte timeout, for requests whose response comes only after the work is done.
    pub async fn send_within(
        &self,
        provider: &'static str,
        key: &ApiKey,
        deadline: Duration,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, ProviderError> {
        let mut attempt = 0;
        loop {
            let started = Instant::now();
            let request = build(&self.client);
            let result = self.send_once(provider, key, deadline, request).await;
            let error = match result {
                Ok(response) => {
                    metrics::FIRST_BYTE
                        .with_label_values(&[provider])
                        .observe(started.elapsed().as_secs_f64());
                    return Ok(response);
                }
                Err(error) => error,
            };
            let Some(wait) = self.retry_wait(&error, attempt) else {
                metrics::count_request(provider, Err(&error.error));
                return Err(error.error);
            };
            attempt += 1;
            tracing::warn!(
                provider,
                attempt,
                wait_ms = wait.as_millis() as u64,
                error = %error.error,
                "provider request failed, retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    async fn send_once(
        &self,
        provider: &'static str,
        key: &ApiKey,
        deadline: Duration,
        request: RequestBuilder,
    ) -> Result<Response, AttemptError> {
        let response = match tokio::time::timeout(deadline, request.send()).await {
            Err(_) => {
                return Err(AttemptError::final_error(ProviderError::Timeout {
                    provider,
                    after: deadline,
                }));
            }
            Ok(Err(err)) => {
                let retry = err.is_connect();
                let error = transport_error(provider, key, &err, deadline);
                return Err(AttemptError {
                    error,
                    retryable: retry,
                    retry_after: None,
                });
            }
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = retry_after(response.headers(), SystemTime::now());
        let message = read_error_message(response, key, self.settings.read_timeout).await;
        Err(AttemptError {
            error: ProviderError::Rejected {
                provider,
                status: status.as_u16(),
                message,
            },
            retryable: is_retryable_status(status),
            retry_after,
        })
    }

    fn retry_wait(&self, error: &AttemptError, attempt: u32) -> Option<Duration> {
        if !error.retryable || attempt >= self.settings.max_retries {
            return None;
        }
        match error.retry_after {
            Some(wait) if wait > self.settings.max_retry_after => None,
            Some(wait) => Some(wait),
            None => Some(RETRY_BASE * 2u32.saturating_pow(attempt)),
        }
    }
}

/// One failed attempt and whether another may follow.
struct AttemptError {
    error: ProviderError,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl AttemptError {
    fn final_error(error: ProviderError) -> Self {
        Self {
            error,
            retryable: false,
            retry_after: None,
        }
    }
}

fn is_retryable_status(status: StatusCode) -> bool {
    // 529 is Anthropic's "overloaded".
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504 | 529)
}

/// Maps a `reqwest` error to a [`ProviderError`], with the key removed from its text.
pub fn transport_error(
    provider: &'static str,
    key: &ApiKey,
    err: &reqwest::Error,
    timeout: Duration,
) -> ProviderError {
    if err.is_timeout() {
        return ProviderError::Timeout {
            provider,
            after: timeout,
        };
    }
    ProviderError::Connect {
        provider,
        message: key.redact(&error_chain(err)),
    }
}

/// Formats an error with its sources, `outer: inner: innermost`.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    text
}

/// Reads up to [`ERROR_BODY_LIMIT`] bytes of an error response and extracts its message.
async fn read_error_message(response: Response, key: &ApiKey, deadline: Duration) -> String {
    let status = response.status();
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    let read = async {
        while let Some(Ok(chunk)) = stream.next().await {
            body.extend_from_slice(&chunk);
            if body.len() >= ERROR_BODY_LIMIT {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(deadline, read).await;
    let message = error_message(&body);
    let message = if message.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("no error message")
            .to_string()
    } else {
        message
    };
    key.redact(&message)
}

/// Extracts a human-readable message from an error body: the `message` of the JSON error
/// shapes used by OpenAI, Anthropic, ElevenLabs and Deepgram, else the body text, shortened.
pub fn error_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|json| json_error_message(&json))
        .unwrap_or_else(|| text.trim().to_string());
    shorten(&message, ERROR_MESSAGE_CHARS)
}

fn json_error_message(json: &serde_json::Value) -> Option<String> {
    let paths: [&[&str]; 6] = [
        &["error", "message"],
        &["detail", "message"],
        &["err_msg"],
        &["message"],
        &["error"],
        &["detail"],
    ];
    paths.iter().find_map(|path| {
        let mut value = json;
        for field in path.iter() {
            value = value.get(field)?;
        }
        value.as_str().map(str::to_string)
    })
}

/// Cuts `text` to at most `max` characters, marking the cut with `...`.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max).collect();
    cut.push_str("...");
    cut
}

/// Reads `Retry-After` (seconds or an HTTP date, RFC 9110 §10.2.3) or the `retry-after-ms`
/// header that OpenAI sends.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let ms = header("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok());
    if let Some(ms) = ms.filter(|ms| ms.is_finite() && *ms >= 0.0) {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = header("retry-after")?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let at = SystemTime::from(date);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A response body read chunk by chunk, each read bounded by the idle deadline.
pub struct BodyReader {
    provider: &'static str,
    key: ApiKey,
    stream: BoxStream<'static, reqwest::Result<Bytes>>,
    idle: Duration,
}

impl BodyReader {
    /// Starts reading `response`'s body.
    pub fn new(provider: &'static str, key: ApiKey, response: Response, idle: Duration) -> Self {
        Self {
            provider,
            key,
            stream: response.bytes_stream().boxed(),
            idle,
        }
    }

    /// Returns the next chunk, `None` at the clean end of the body, or the error that ended it:
    /// [`ProviderError::Timeout`] when nothing arrived for the idle deadline, and
    /// [`ProviderError::Connect`] when the connection dropped before the body was complete.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, ProviderError>> {
        match tokio::time::timeout(self.idle, self.stream.next()).await {
            Err(_) => Some(Err(ProviderError::Timeout {
                provider: self.provider,
                after: self.idle,
            })),
            Ok(None) => None,
            Ok(Some(Ok(chunk))) => Some(Ok(chunk)),
            Ok(Some(Err(err))) => Some(Err(ProviderError::Connect {
                provider: self.provider,
                message: format!(
                    "connection dropped mid-stream: {}",
                    self.key.redact(&error_chain(&err))
                ),
            })),
        }
    }
}

impl std::fmt::Debug for BodyReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyReader")
            .field("provider", &self.provider)
            .field("idle", &self.idle)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn retry_after_seconds() {
        let h = headers(&[("retry-after", "3")]);
        assert_eq!(
            retry_after(&h, SystemTime::now()),
            Some(Duration::from_secs(3))
        );
    }

    #[test]
    fn retry_after_ms_wins() {
        let h = headers(&[("retry-after", "3"), ("retry-after-ms", "250")]);
        assert_eq!(
            retry_after(&h, SystemTime::now()),
            Some(Duration::from_millis(250))
        );
    }

    #[test]
    fn retry_after_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_770);
        let h = headers(&[("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT")]);
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
    }

    #[test]
    fn retry_after_garbage_is_none() {
        let h = headers(&[("retry-after", "soon")]);
        assert_eq!(retry_after(&h, SystemTime::now()), None);
    }

    #[test]
    fn error_message_shapes() {
        let cases: [(&[u8], &str); 6] = [
            (br#"{"error":{"message":"bad key","type":"x"}}"#, "bad key"),
            (
                br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
                "Overloaded",
            ),
            (br#"{"detail":{"status":"x","message":"quota"}}"#, "quota"),
            (
                br#"{"err_code":"INVALID_AUTH","err_msg":"Invalid credentials."}"#,
                "Invalid credentials.",
            ),
            (br#"{"detail":"Not Found"}"#, "Not Found"),
            (b"  plain text body \n", "plain text body"),
        ];
        for (body, expected) in cases {
            assert_eq!(error_message(body), expected);
        }
    }

    #[test]
    fn error_message_is_shortened() {
        let body = "x".repeat(1_000);
        let message = error_message(body.as_bytes());
        assert_eq!(message.chars().count(), ERROR_MESSAGE_CHARS + 3);
    }

    #[test]
    fn shorten_respects_char_boundaries() {
        assert_eq!(shorten("ééé", 2), "éé...");
    }
}
