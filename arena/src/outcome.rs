//! What one response means for the caller who sent it.
//!
//! A legitimate request succeeds when it gets a 2xx, or the 4xx it deserved:
//! a 404 for a user it asked for knowing the user might not exist (the
//! population asks for some missing ids on purpose). Every other answer is a
//! failure of the service towards that caller: a refusal (429, 401, any
//! other 4xx), a server error (5xx), or no answer at all (connection error,
//! timeout).

use std::time::Duration;

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx.
    Success,
    /// A 4xx the request deserved (listed in its `deserved` statuses).
    Deserved,
    /// Any other 4xx, 429 included.
    Refused,
    /// A 5xx.
    ServerError,
    /// No HTTP answer: a connection error or the request timeout.
    NoAnswer,
}

impl Outcome {
    /// Whether the caller got what it should have.
    pub fn is_success(self) -> bool {
        matches!(self, Outcome::Success | Outcome::Deserved)
    }
}

/// Classifies an answer (`None`: none came) against the statuses the
/// request deserved.
pub fn classify(status: Option<u16>, deserved: &[u16]) -> Outcome {
    match status {
        None => Outcome::NoAnswer,
        Some(s) if (200..300).contains(&s) => Outcome::Success,
        // Only a 4xx can be deserved: a 5xx is the service's failure.
        Some(s) if s >= 500 => Outcome::ServerError,
        Some(s) if deserved.contains(&s) => Outcome::Deserved,
        Some(_) => Outcome::Refused,
    }
}

/// The delay of a `Retry-After` in seconds (RFC 9110 section 10.2.3). The
/// HTTP-date form is not used by either service and reads as absent.
pub fn retry_after(value: Option<&str>) -> Option<Duration> {
    value?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The label a status is counted under: `200`, or `none` without an answer.
pub fn status_label(status: Option<u16>) -> String {
    status.map_or_else(|| "none".to_owned(), |s| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_2xx_or_a_deserved_4xx_is_a_success() {
        assert_eq!(classify(Some(200), &[]), Outcome::Success);
        assert_eq!(classify(Some(201), &[404]), Outcome::Success);
        assert_eq!(classify(Some(404), &[404]), Outcome::Deserved);
        assert!(classify(Some(404), &[404]).is_success());
    }

    #[test]
    fn refusals_errors_and_silence_are_failures() {
        assert_eq!(classify(Some(404), &[]), Outcome::Refused);
        assert_eq!(classify(Some(429), &[404]), Outcome::Refused);
        assert_eq!(classify(Some(401), &[]), Outcome::Refused);
        assert_eq!(classify(Some(503), &[503]), Outcome::ServerError);
        assert_eq!(classify(Some(500), &[]), Outcome::ServerError);
        assert_eq!(classify(None, &[404]), Outcome::NoAnswer);
        for outcome in [Outcome::Refused, Outcome::ServerError, Outcome::NoAnswer] {
            assert!(!outcome.is_success(), "{outcome:?}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_only() {
        assert_eq!(retry_after(Some("2")), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(Some(" 10 ")), Some(Duration::from_secs(10)));
        assert_eq!(retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after(None), None);
        assert_eq!(status_label(None), "none");
        assert_eq!(status_label(Some(429)), "429");
    }
}
