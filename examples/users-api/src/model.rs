//! The users API's data: what clients send, what is stored, what is returned,
//! and the validation that turns bad input into a 400 before any call.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /api/v1/users` body. Unknown fields are refused.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// 1 to 64 of `A-Z a-z 0-9 _ -`.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub user_id: String,
    /// A plausible e-mail address.
    #[schema(
        pattern = "^[!-?A-~]{1,64}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z]{2,63}$",
        max_length = 254
    )]
    pub email: String,
    /// 1 to 100 characters, not blank, no control characters, no invisible
    /// format characters (bidi overrides, zero-width spaces).
    #[schema(
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F\\u00AD\\u061C\\u180E\\u200B-\\u200F\\u202A-\\u202E\\u2060-\\u2064\\u2066-\\u2069\\uFEFF]*[^\\s\\u0000-\\u001F\\u007F-\\u009F\\u00AD\\u061C\\u180E\\u200B-\\u200F\\u202A-\\u202E\\u2060-\\u2064\\u2066-\\u2069\\uFEFF][^\\u0000-\\u001F\\u007F-\\u009F\\u00AD\\u061C\\u180E\\u200B-\\u200F\\u202A-\\u202E\\u2060-\\u2064\\u2066-\\u2069\\uFEFF]*$",
        min_length = 1,
        max_length = 100
    )]
    pub name: String,
}

/// `PUT /api/v1/users/{user_id}` body. Unknown fields are refused.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    /// A plausible e-mail address.
    #[schema(
        pattern = "^[!-?A-~]{1,64}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z]{2,63}$",
        max_length = 254
    )]
    pub email: String,
    /// 1 to 100 characters, not blank, no control characters, no invisible
    /// format characters (bidi overrides, zero-width spaces).
    #[schema(
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F\\u00AD\\u061C\\u180E\\u200B-\\u200F\\u202A-\\u202E\\u2060-\\u2064\\u2066-\\u2069\\uFEFF]*[^\\s\\u0000-\\u001F\\u007F-\\u009F\\u00AD\\u061C\\u180E\\u200B-\\u200F\\u202A-\\u202E\\u2060-\\u2064\\u2066-\\u2069\\uFEFF][^\\u0000-\\u001F\\u007F-\\u009F\\u00AD\\u061C\\u180E\\u200B-\\u200F\\u202A-\\u202E\\u2060-\\u2064\\u2066-\\u2069\\uFEFF]*$",
        min_length = 1,
        max_length = 100
    )]
    pub name: String,
}

/// A user as stored and as returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct User {
    /// The user's id.
    pub user_id: String,
    /// The e-mail address.
    pub email: String,
    /// The display name.
    pub name: String,
    /// The version; `ETag` and `If-Match` carry it.
    #[serde(default)]
    pub version: u64,
}

/// The one error shape of the API: RFC 9457 problem details, sent as
/// `application/problem+json`, with the API's earlier `error` and `message`
/// kept as extension members (RFC 9457 section 3.2).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The problem type: `about:blank`, or one of the IETF RateLimit draft's
    /// (`https://iana.org/assignments/http-problem-types#quota-exceeded`,
    /// `#temporary-reduced-capacity`, `#abnormal-usage-detected`).
    #[serde(rename = "type")]
    #[schema(example = "about:blank")]
    pub problem_type: String,
    /// The problem type's summary: the status's reason phrase for
    /// `about:blank`.
    pub title: String,
    /// The HTTP status code of the answer.
    pub status: u16,
    /// What was wrong and what to do.
    pub detail: String,
    /// A stable machine-readable code, e.g. `invalid_input`.
    pub error: String,
    /// The same text as `detail`.
    pub message: String,
    /// With `quota-exceeded`: the policies that refused, named as in
    /// `RateLimit-Policy` (`<namespace>.<limit>`).
    #[serde(
        rename = "violated-policies",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub violated_policies: Vec<String>,
}

pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_EMAIL_BYTES: usize = 254;

/// Checks a user id; the error says what is wrong.
pub fn validate_user_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 64 {
        return Err("user_id must be 1 to 64 characters".into());
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err("user_id may only contain A-Z, a-z, 0-9, '_' and '-'".into());
    }
    Ok(())
}

/// Checks that an e-mail address is plausible: one `@`, a non-empty local
/// part, a dotted domain, no spaces or control characters.
pub fn validate_email(email: &str) -> Result<(), String> {
    let invalid = || {
        Err(format!(
            "email `{}` is not a plausible address",
            email.chars().take(80).collect::<String>()
        ))
    };
    if email.len() > MAX_EMAIL_BYTES || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return invalid();
    }
    let Some((local, domain)) = email.split_once('@') else {
        return invalid();
    };
    // The same rules as the OpenAPI pattern: printable ASCII before the @,
    // labels of letters, digits and inner hyphens, a top-level domain of
    // 2 to 63 letters.
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let tld_ok = labels
        .last()
        .is_some_and(|t| (2..=63).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_alphabetic()));
    if local.is_empty()
        || local.len() > 64
        || !local
            .bytes()
            .all(|b| (b'!'..=b'~').contains(&b) && b != b'@')
        || labels.len() < 2
        || !labels.iter().all(label_ok)
        || !tld_ok
    {
        return invalid();
    }
    Ok(())
}

/// Checks a display name.
pub fn validate_name(name: &str) -> Result<(), String> {
    let chars = name.chars().count();
    if name.trim().is_empty() || chars > MAX_NAME_CHARS {
        return Err(format!(
            "name must be 1 to {MAX_NAME_CHARS} characters, not blank"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("name may not contain control characters".into());
    }
    if name.chars().any(invisible) {
        return Err(
            "name may not contain invisible format characters (bidi overrides, zero-width \
             spaces): they make one name display as another"
                .into(),
        );
    }
    Ok(())
}

/// Unicode format characters (category Cf) that change how text displays
/// without showing themselves: bidi embeddings, overrides and isolates,
/// zero-width spaces and joiners, word joiners, the BOM, the soft hyphen.
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

impl NewUser {
    pub fn validate(&self) -> Result<(), String> {
        validate_user_id(&self.user_id)?;
        validate_email(&self.email)?;
        validate_name(&self.name)
    }
}

impl UserChange {
    pub fn validate(&self) -> Result<(), String> {
        validate_email(&self.email)?;
        validate_name(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 14, point 13: names accepted bidi overrides and zero-width
    /// characters, so one user could display as another.
    #[test]
    fn names_refuse_invisible_format_characters() {
        for spoof in [
            "Ada\u{202E}ecalevoL",
            "A\u{200B}da",
            "\u{2066}Ada\u{2069}",
            "Ada\u{FEFF}",
        ] {
            assert!(validate_name(spoof).is_err(), "{spoof:?}");
        }
        assert!(validate_name("Ada Lovelace").is_ok());
        assert!(validate_name("Zoë Ünal").is_ok());
    }

    /// schemathesis found `0@g.AVALGlAzAAwPAEAoV*` accepted although the
    /// OpenAPI pattern refuses it: the code now checks what the pattern says.
    #[test]
    fn emails_follow_the_documented_pattern() {
        for bad in [
            "0@g.AVALGlAzAAwPAEAoV*",
            "a@b.c0",
            "a@b_c.com",
            "é@example.com",
            "a@example.c",
        ] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
        for good in [
            "a@b.co",
            "first.last+tag@sub-domain.example.org",
            "0@g.AVALGl",
        ] {
            assert!(validate_email(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn ids_emails_and_names() {
        assert!(validate_user_id("ada_L-1").is_ok());
        for bad in ["", "a b", "ü", &"x".repeat(65), "../etc"] {
            assert!(validate_user_id(bad).is_err(), "{bad}");
        }
        assert!(validate_email("ada@example.com").is_ok());
        for bad in [
            "ada",
            "@example.com",
            "ada@com",
            "a da@example.com",
            "ada@@x.io",
            "ada@x..io",
        ] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
        assert!(validate_name("Ada Lovelace").is_ok());
        for bad in ["", "   ", &"n".repeat(101), "a\u{0}b"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }
}
