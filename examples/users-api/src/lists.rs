//! `GET /api/v1/users`: a page of users, or the users with one email, with
//! a sealed cursor to the next page.
//!
//! What keeps the list from becoming a table walk or a capacity drain:
//! - the page size is bounded (1 to 100);
//! - each request's read budget is what the rate-limit layer reserved from
//!   the caller's read-unit quota ([`Reserved`]); a filter that finds little
//!   stops at the budget with a cursor (200, a partial page), never walks on;
//! - a page the table is too busy to fill ends with what it read and a
//!   cursor (200, `table_busy`), rather than a 503 that wastes those reads;
//! - the caller is charged what the page really consumed;
//! - the cursor is sealed to this query and this caller, and expires; a
//!   forged, foreign or stale cursor is a 400 before any DynamoDB call.

use axum::Extension;
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use dynagate::http::{Caller, Reserved};
use dynagate::repository::{Filter, KeyCondition, Page, PageEnd, ReadBudget};
use http::HeaderValue;
use http::header::LINK;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use crate::errors::ApiError;
use crate::idempotency::RECORD_PREFIX;
use crate::limits::LIST_READ_UNITS;
use crate::model::{ErrorBody, User, validate_email};
use crate::state::{AppState, EMAIL_INDEX};

/// Page size bounds.
pub const MAX_LIMIT: u32 = 100;
const DEFAULT_LIMIT: u32 = 25;
/// A cursor longer than this is refused before it is decoded.
const MAX_CURSOR_CHARS: usize = 8192;
/// The most DynamoDB calls one page makes.
const MAX_CALLS: u32 = 8;

/// The query of `GET /api/v1/users`.
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Users per page, 1 to 100 (default 25).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page, unchanged.
    #[param(max_length = 8192, pattern = "^[A-Za-z0-9_-]+$")]
    cursor: Option<String>,
    /// Only the users with this email (through the `by_email` index).
    #[param(
        pattern = "^[!-?A-~]{1,64}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z]{2,63}$",
        max_length = 254
    )]
    email: Option<String>,
}

impl ListParams {
    /// Parses the raw query: unknown, repeated or malformed parameters are a
    /// 400 that names them.
    fn parse(query: Option<&str>) -> Result<ListParams, ApiError> {
        let mut params = ListParams::default();
        let invalid = |m: String| ApiError::InvalidInput(m);
        for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let repeated = || invalid(format!("query parameter `{name}` is given twice"));
            match name.as_ref() {
                "limit" => {
                    let limit = value
                        .parse::<u32>()
                        .ok()
                        .filter(|l| (1..=MAX_LIMIT).contains(l))
                        .ok_or_else(|| {
                            invalid(format!(
                                "limit must be a whole number from 1 to {MAX_LIMIT}, got `{}`",
                                value.chars().take(40).collect::<String>()
                            ))
                        })?;
                    if params.limit.replace(limit).is_some() {
                        return Err(repeated());
                    }
                }
                "cursor" => {
                    if value.is_empty() || value.len() > MAX_CURSOR_CHARS {
                        return Err(ApiError::InvalidCursor(format!(
                            "the cursor must be 1 to {MAX_CURSOR_CHARS} characters: pass the \
                             next_cursor of the previous page unchanged"
                        )));
                    }
                    if params.cursor.replace(value.into_owned()).is_some() {
                        return Err(repeated());
                    }
                }
                "email" => {
                    validate_email(&value).map_err(invalid)?;
                    if params.email.replace(value.into_owned()).is_some() {
                        return Err(repeated());
                    }
                }
                other => {
                    return Err(invalid(format!(
                        "unknown query parameter `{}`: use limit, cursor or email",
                        other.chars().take(40).collect::<String>()
                    )));
                }
            }
        }
        Ok(params)
    }
}

/// A page of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    /// The users, in key order (by `user_id` hash for the whole list).
    users: Vec<User>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    next_cursor: Option<String>,
    /// True when this page stopped at its read budget before it was full:
    /// fewer users than `limit`, and more may follow the cursor.
    budget_exhausted: bool,
    /// True when the table was too busy to read on after the page's first
    /// read: fewer users than `limit`, and more may follow the cursor; follow
    /// it after a pause. (The page is not thrown away with a 503 for want of
    /// capacity to fill it.)
    table_busy: bool,
}

/// Lists users, a page at a time, or finds the users with one email.
#[utoipa::path(get, path = "/api/v1/users", params(ListParams),
    responses(
        (status = 200, description = "A page; `Link: <...>; rel=\"next\"` when more follow", body = UserPage),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn list_users(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    reserved: Option<Extension<Reserved>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = ListParams::parse(query.as_deref())?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    let caller = caller.map(|c| c.id.clone()).unwrap_or_default();
    let units = reserved
        .and_then(|r| r.read_units)
        .unwrap_or(LIST_READ_UNITS);
    let budget = ReadBudget::units(u32::try_from(units).unwrap_or(u32::MAX)).calls(MAX_CALLS);
    let page: Page<User> = match &params.email {
        Some(email) => {
            let mut query = state
                .users
                .query(KeyCondition::partition(email.as_str()))
                .index(EMAIL_INDEX)
                .budget(budget)
                .page_size(limit)
                .caller(&caller);
            if let Some(cursor) = &params.cursor {
                query = query.after(cursor);
            }
            query.page().await?
        }
        None => {
            // Idempotency records share the table; they are read (and paid
            // for) but never listed.
            let mut scan = state
                .users
                .scan(budget)
                .filter(Filter::not(
                    Filter::attr("user_id").begins_with(RECORD_PREFIX),
                ))
                .page_size(limit)
                .caller(&caller);
            if let Some(cursor) = &params.cursor {
                scan = scan.after(cursor);
            }
            scan.page().await?
        }
    };
    let link = page
        .next_cursor
        .as_deref()
        .map(|cursor| next_link(limit, cursor, params.email.as_deref()));
    let body = UserPage {
        budget_exhausted: page.end == PageEnd::Budget,
        table_busy: page.end == PageEnd::Busy,
        next_cursor: page.next_cursor,
        users: page.items,
    };
    let mut response = Json(body).into_response();
    if let Some(link) = link {
        response.headers_mut().insert(LINK, link);
    }
    Ok(response)
}

/// `</api/v1/users?limit=N&cursor=C>; rel="next"` (RFC 8288).
fn next_link(limit: u32, cursor: &str, email: Option<&str>) -> HeaderValue {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("limit", &limit.to_string());
    if let Some(email) = email {
        query.append_pair("email", email);
    }
    query.append_pair("cursor", cursor);
    let link = format!("</api/v1/users?{}>; rel=\"next\"", query.finish());
    HeaderValue::from_str(&link).expect("a URL-encoded link is a valid header")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(query: &str) -> String {
        match ListParams::parse(Some(query)) {
            Err(ApiError::InvalidInput(m) | ApiError::InvalidCursor(m)) => m,
            other => panic!("{query}: {other:?}"),
        }
    }

    #[test]
    fn parameters_are_checked_and_named() {
        assert!(refused("limit=0").contains("1 to 100"));
        assert!(refused("limit=101").contains("1 to 100"));
        assert!(refused("limit=ten").contains("`ten`"));
        assert!(refused("limit=5&limit=6").contains("twice"));
        assert!(refused("cursor=").contains("cursor"));
        assert!(refused("email=nope").contains("email"));
        assert!(refused("sort=name").contains("unknown query parameter `sort`"));
        let ok = ListParams::parse(Some("limit=7&email=a%40b.co")).unwrap();
        assert_eq!(ok.limit, Some(7));
        assert_eq!(ok.email.as_deref(), Some("a@b.co"));
        assert!(ListParams::parse(None).unwrap().limit.is_none());
    }

    #[test]
    fn the_next_link_carries_the_query() {
        let link = next_link(10, "abc_-1", Some("a+b@c.io"));
        assert_eq!(
            link.to_str().unwrap(),
            "</api/v1/users?limit=10&email=a%2Bb%40c.io&cursor=abc_-1>; rel=\"next\""
        );
    }
}
