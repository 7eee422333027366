//! Bearer authentication: the admin token for tenant management, tenant API keys for a
//! tenant's own data.

use std::time::Instant;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ApiState;
use super::problem::Problem;
use crate::tenancy::{Tenant, TenantStatus};

/// Proof that the request carries the admin token.
#[derive(Debug)]
pub(crate) struct Admin;

/// The tenant whose API key authenticated the request.
#[derive(Debug)]
pub(crate) struct TenantKey {
    /// The key's tenant, active.
    pub tenant: Tenant,
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    // RFC 6750 §2.1 with RFC 9110 §11.1: the scheme name is case-insensitive.
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

impl FromRequestParts<ApiState> for Admin {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Problem> {
        if state.admin_token.is_empty() {
            return Err(Problem::unauthorized(
                "the admin API is disabled; set http.admin_token",
            ));
        }
        let Some(token) = bearer(parts) else {
            return Err(Problem::unauthorized(
                "missing admin token; send Authorization: Bearer <token>",
            ));
        };
        // Comparing digests keeps the comparison constant-time even when the lengths differ.
        let given = Sha256::digest(token.as_bytes());
        let expected = Sha256::digest(state.admin_token.as_bytes());
        let matches: bool = given.ct_eq(&expected).into();
        if !matches {
            return Err(Problem::unauthorized("invalid admin token"));
        }
        Ok(Admin)
    }
}

impl FromRequestParts<ApiState> for TenantKey {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Problem> {
        let Some(key) = bearer(parts) else {
            return Err(Problem::unauthorized(
                "missing API key; send Authorization: Bearer <key>",
            ));
        };
        let Some(found) = state.store.authenticate(key).await? else {
            return Err(Problem::unauthorized("invalid or revoked API key"));
        };
        let tenant = found.tenant;
        if tenant.status == TenantStatus::Suspended {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                format!("tenant `{}` is suspended", tenant.name),
            ));
        }
        if let Err(wait) = state.limiter.check(tenant.id, Instant::now()) {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Err(Problem {
                retry_after: Some(secs.max(1)),
                ..Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "more than {} requests per second for tenant `{}`",
                        state.rate_per_sec, tenant.name
                    ),
                )
            });
        }
        state.store.count_api_request(tenant.id);
        Ok(TenantKey { tenant })
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;

    fn parts(authorization: Option<&str>) -> Parts {
        let mut request = Request::builder().uri("/calls");
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn bearer_token_extracted() {
        assert_eq!(bearer(&parts(Some("Bearer abc"))), Some("abc"));
        assert_eq!(bearer(&parts(Some("bearer  abc "))), Some("abc"));
        assert_eq!(bearer(&parts(Some("Basic abc"))), None);
        assert_eq!(bearer(&parts(Some("Bearer "))), None);
        assert_eq!(bearer(&parts(Some("Bearer"))), None);
        assert_eq!(bearer(&parts(None)), None);
    }
}
