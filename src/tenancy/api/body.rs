//! JSON request bodies and query strings, with errors that name the offending field.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use super::problem::Problem;

/// Parses a JSON body; a 400 names the field that failed, a 415 rejects other media types.
pub(crate) fn parse_json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<T, Problem> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the body as application/json",
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        if !err.inner().is_data() {
            // Not JSON at all (syntax error, truncated): no field to blame.
            return Problem::invalid("body", format!("invalid body: {}", err.inner()));
        }
        let field = field_of(&err.path().to_string(), &err.inner().to_string());
        Problem::invalid(field.clone(), format!("invalid {field}: {}", err.inner()))
    })?;
    deserializer
        .end()
        .map_err(|err| Problem::invalid("body", format!("invalid body: {err}")))?;
    Ok(value)
}

/// Turns a serde path and message into a dotted field name. A missing field is reported on
/// its container, so its name comes from the message.
fn field_of(path: &str, message: &str) -> String {
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    let path = if path == "." { "" } else { path };
    match (path, missing) {
        ("", Some(name)) => name.to_string(),
        (path, Some(name)) => format!("{path}.{name}"),
        ("", None) => "body".to_string(),
        (path, None) => path.to_string(),
    }
}

/// Maps a rejected query string to a 400.
pub(crate) fn query_problem(rejection: QueryRejection) -> Problem {
    let message = rejection.body_text();
    let field = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|start| message.split(start).nth(1))
        .and_then(|rest| rest.split('`').next())
        .unwrap_or("query")
        .to_string();
    Problem::invalid(field, message)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        limits: Inner,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        max: u32,
    }

    fn json_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        headers
    }

    fn field(body: &str) -> Option<String> {
        parse_json::<Outer>(&json_headers(), &Bytes::from(body.to_string()))
            .unwrap_err()
            .field
    }

    #[test]
    fn wrong_type_names_nested_field() {
        let body = r#"{"name": "a", "limits": {"max": "ten"}}"#;
        assert_eq!(field(body).as_deref(), Some("limits.max"));
    }

    #[test]
    fn missing_and_unknown_fields_named() {
        assert_eq!(field(r#"{"limits": {"max": 1}}"#).as_deref(), Some("name"));
        let unknown = r#"{"name": "a", "limits": {"max": 1, "min": 0}}"#;
        assert_eq!(field(unknown).as_deref(), Some("limits.min"));
    }

    #[test]
    fn malformed_json_is_body_error() {
        assert_eq!(field("{").as_deref(), Some("body"));
        assert_eq!(field("").as_deref(), Some("body"));
        assert_eq!(
            field(r#"{"name": "a", "limits": {"max": 1}} x"#).as_deref(),
            Some("body")
        );
    }

    #[test]
    fn other_media_type_rejected() {
        let err = parse_json::<Outer>(&HeaderMap::new(), &Bytes::from_static(b"{}")).unwrap_err();
        assert_eq!(err.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
}
