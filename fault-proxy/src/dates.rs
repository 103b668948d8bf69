//! The two date formats DynamoDB's answers use: HTTP's `Date` header and
//! SigV4's timestamps (in "Signature expired" messages).

use std::time::SystemTime;

use http::HeaderValue;

/// An RFC 7231 IMF-fixdate, `Tue, 01 Dec 2026 23:42:18 GMT`.
pub(crate) fn http_date(time: SystemTime) -> HeaderValue {
    HeaderValue::from_str(&httpdate::fmt_http_date(time))
        .expect("an HTTP date is a valid header value")
}

/// SigV4's basic ISO 8601 format, `20261201T234218Z`.
pub(crate) fn amz_date(time: SystemTime) -> String {
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's `civil_from_days`).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_have_the_http_and_sigv4_formats() {
        // 2026-12-01T23:42:18Z, and a leap day.
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_168_538);
        assert_eq!(http_date(t), "Tue, 01 Dec 2026 23:42:18 GMT");
        assert_eq!(amz_date(t), "20261201T234218Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(amz_date(leap), "20000229T000000Z");
        assert_eq!(amz_date(SystemTime::UNIX_EPOCH), "19700101T000000Z");
    }
}
