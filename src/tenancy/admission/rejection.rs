//! Reasons a call is not admitted, and the SIP responses that carry them.

use std::fmt;

/// Reason a call was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// No tenant owns the dialled number and no default tenant is set.
    NoRoute,
    /// The tenant is suspended.
    Suspended,
    /// The tenant has `max_concurrent_calls` calls up.
    Concurrency,
    /// The tenant used its monthly calls.
    MonthlyCalls,
    /// The tenant used its monthly minutes.
    MonthlyMinutes,
    /// The database could not be asked.
    Unavailable,
}

impl RejectReason {
    /// Label of the `reason` metric dimension.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::NoRoute => "no_route",
            RejectReason::Suspended => "suspended",
            RejectReason::Concurrency => "concurrency",
            RejectReason::MonthlyCalls => "monthly_calls",
            RejectReason::MonthlyMinutes => "monthly_minutes",
            RejectReason::Unavailable => "unavailable",
        }
    }

    /// Text of the Reason header.
    fn text(self) -> &'static str {
        match self {
            RejectReason::NoRoute => "number not assigned",
            RejectReason::Suspended => "tenant suspended",
            RejectReason::Concurrency => "tenant call limit reached",
            RejectReason::MonthlyCalls => "monthly call limit reached",
            RejectReason::MonthlyMinutes => "monthly minute limit reached",
            RejectReason::Unavailable => "tenant database unavailable",
        }
    }
}

/// A rejected call: the SIP final response the call layer sends, with its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Why.
    pub reason: RejectReason,
    /// SIP status code: 404, 403, 486 or 503.
    pub status: u16,
    /// Seconds for a Retry-After header (RFC 3261 §20.33), sent with 503.
    pub retry_after: Option<u32>,
}

impl Rejection {
    /// No tenant for the number: 404 Not Found.
    pub fn no_route() -> Rejection {
        Rejection {
            reason: RejectReason::NoRoute,
            status: 404,
            retry_after: None,
        }
    }

    /// Rejects the call for good for this tenant: 403 Forbidden.
    pub fn forbidden(reason: RejectReason) -> Rejection {
        Rejection {
            reason,
            status: 403,
            retry_after: None,
        }
    }

    /// Rejects a call over the concurrency limit: 486 Busy Here, or 503 with Retry-After when
    /// `[tenancy] over_limit = "unavailable"`.
    pub fn over_limit(over_limit: &str, retry_after_secs: u32) -> Rejection {
        if over_limit == "unavailable" {
            Rejection {
                reason: RejectReason::Concurrency,
                status: 503,
                retry_after: Some(retry_after_secs),
            }
        } else {
            Rejection {
                reason: RejectReason::Concurrency,
                status: 486,
                retry_after: None,
            }
        }
    }

    /// Rejects a call because the database failed: 503 with Retry-After, so the trunk tries
    /// another node.
    pub fn unavailable(retry_after_secs: u32) -> Rejection {
        Rejection {
            reason: RejectReason::Unavailable,
            status: 503,
            retry_after: Some(retry_after_secs),
        }
    }

    /// Returns the standard reason phrase of the status code.
    pub fn reason_phrase(&self) -> &'static str {
        match self.status {
            403 => "Forbidden",
            404 => "Not Found",
            486 => "Busy Here",
            503 => "Service Unavailable",
            _ => "Rejected",
        }
    }

    /// Value of the Reason header (RFC 3326 §2): `SIP;cause=486;text="tenant call limit reached"`.
    pub fn reason_header(&self) -> String {
        format!("SIP;cause={};text=\"{}\"", self.status, self.reason.text())
    }

    /// Headers to add to the response: Reason, and Retry-After when set.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![("Reason", self.reason_header())];
        if let Some(secs) = self.retry_after {
            headers.push(("Retry-After", secs.to_string()));
        }
        headers
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} ({})",
            self.status,
            self.reason_phrase(),
            self.reason.text()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_by_default() {
        let rejection = Rejection::over_limit("busy", 30);
        assert_eq!(rejection.status, 486);
        assert_eq!(rejection.reason_phrase(), "Busy Here");
        assert_eq!(
            rejection.headers(),
            vec![(
                "Reason",
                "SIP;cause=486;text=\"tenant call limit reached\"".to_string()
            )]
        );
    }

    #[test]
    fn unavailable_sends_retry_after() {
        let rejection = Rejection::over_limit("unavailable", 30);
        assert_eq!(rejection.status, 503);
        assert_eq!(rejection.headers()[1], ("Retry-After", "30".to_string()));
    }

    #[test]
    fn monthly_limit_is_forbidden_with_reason() {
        let rejection = Rejection::forbidden(RejectReason::MonthlyMinutes);
        assert_eq!(rejection.status, 403);
        assert_eq!(
            rejection.reason_header(),
            "SIP;cause=403;text=\"monthly minute limit reached\""
        );
        assert_eq!(rejection.retry_after, None);
    }

    #[test]
    fn no_route_is_not_found() {
        let rejection = Rejection::no_route();
        assert_eq!(rejection.to_string(), "404 Not Found (number not assigned)");
    }
}
