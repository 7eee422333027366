//! Error responses as RFC 9457 problem details (`application/problem+json`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::tenancy::TenancyError;

/// An API error: status, a sentence for humans, and the offending field when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// HTTP status.
    pub status: StatusCode,
    /// Explanation of this occurrence of the problem.
    pub detail: String,
    /// Dotted name of the invalid field, for 400 responses.
    pub field: Option<String>,
    /// Seconds for a Retry-After header, for 429 and 503 responses.
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl Problem {
    /// Builds a problem with `status` and `detail`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            detail: detail.into(),
            field: None,
            retry_after: None,
        }
    }

    /// 400 naming the invalid field.
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Problem {
        Problem {
            field: Some(field.into()),
            ..Problem::new(StatusCode::BAD_REQUEST, detail)
        }
    }

    /// 401 with a Bearer challenge.
    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, detail)
    }

    /// 404 for `kind` `key`, worded the same whether it does not exist or is another tenant's.
    pub fn not_found(kind: &str, key: impl std::fmt::Display) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, format!("{kind} `{key}` not found"))
    }
}

impl From<TenancyError> for Problem {
    fn from(err: TenancyError) -> Problem {
        match err {
            TenancyError::NotFound { .. } => Problem::new(StatusCode::NOT_FOUND, err.to_string()),
            TenancyError::Conflict(message) => Problem::new(StatusCode::CONFLICT, message),
            TenancyError::Invalid { field, message } => {
                Problem::invalid(field.clone(), format!("invalid {field}: {message}"))
            }
            err if err.is_transient() => {
                tracing::warn!(error = %err, "API request failed: database unavailable");
                Problem {
                    retry_after: Some(5),
                    ..Problem::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the database is unavailable; retry later",
                    )
                }
            }
            err => {
                // The message may carry SQL details; it is logged, not returned.
                tracing::error!(error = %err, "API request failed");
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = Body {
            kind: "about:blank",
            title,
            status: self.status.as_u16(),
            detail: &self.detail,
            field: self.field.as_deref(),
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (self.status, json).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6750 §3: a 401 names the scheme the client should use.
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn invalid_names_field() {
        let response =
            Problem::from(TenancyError::invalid("settings.voice", "too long")).into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body = body_of(response).await;
        assert_eq!(body["field"], "settings.voice");
        assert_eq!(body["status"], 400);
        assert_eq!(body["title"], "Bad Request");
        assert_eq!(body["detail"], "invalid settings.voice: too long");
    }

    #[tokio::test]
    async fn unauthorized_has_challenge() {
        let response = Problem::unauthorized("missing key").into_response();
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }

    #[tokio::test]
    async fn unavailable_database_asks_to_retry() {
        let response = Problem::from(TenancyError::Timeout("list_calls")).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
    }

    #[tokio::test]
    async fn internal_errors_hide_details() {
        let response =
            Problem::from(TenancyError::Database(sqlx::Error::RowNotFound)).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = body_of(response).await;
        assert_eq!(body["detail"], "internal error");
    }
}
