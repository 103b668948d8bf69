//! The handlers of `/api/v1/users`.

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use dynagate::http::Caller;
use dynagate::repository::{Consistency, DeleteCondition, Key, WriteToken};
use http::header::{CONTENT_TYPE, ETAG, IF_MATCH, LOCATION};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde::de::DeserializeOwned;

use crate::errors::ApiError;
use crate::idempotency::{IdempotencyKey, Precondition, write_once};
use crate::model::{ErrorBody, NewUser, User, UserChange, validate_user_id};
use crate::state::AppState;

/// Parses a JSON body: `Content-Type: application/json` (415 otherwise), and a
/// 400 that names the problem (the line and column, the unknown field).
fn json_body<T: DeserializeOwned>(headers: &HeaderMap, body: &Bytes) -> Result<T, ApiError> {
    let is_json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::InvalidInput(format!("invalid JSON body: {e}")))
}

/// Set on a response that replays the first result of its `Idempotency-Key`
/// (nothing was written this time), as Stripe's API does.
const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// The version in `If-Match: "3"`; `None` when the header is absent.
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(IF_MATCH) else {
        return Ok(None);
    };
    // An ETag as this API sends it, `"3"` (or weak, `W/"3"`); the bare
    // version `3` is accepted too, since some clients drop the quotes.
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/"))
        .map(|v| v.strip_prefix('"').unwrap_or(v))
        .map(|v| v.strip_suffix('"').unwrap_or(v))
        .filter(|v| !v.is_empty() && v.len() <= 19 && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::InvalidInput(
                "If-Match must be an ETag this API returned, such as \"3\"".into(),
            )
        })
}

fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("digits are a valid header")
}

fn checked_id(user_id: &str) -> Result<(), ApiError> {
    validate_user_id(user_id).map_err(ApiError::InvalidInput)
}

/// Creates a user.
#[utoipa::path(post, path = "/api/v1/users", request_body = NewUser,
    params(("Idempotency-Key" = Option<String>, Header, nullable = false, pattern = "^[!-~]{1,255}$", description = "Repeat a request safely: the same caller, key and request replay the first result; the key with another request is 422")),
    responses(
        (status = 201, description = "Created (or replayed: `Idempotent-Replayed: true`)", body = User),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn create_user(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let new: NewUser = json_body(&headers, &body)?;
    new.validate().map_err(ApiError::InvalidInput)?;
    let key = IdempotencyKey::from_request(
        &headers,
        caller.as_deref(),
        &Method::POST,
        "/api/v1/users",
        &[&new.user_id, &new.email, &new.name],
    )?;
    let user = User {
        user_id: new.user_id,
        email: new.email,
        name: new.name,
        version: 1,
    };
    let (user, replayed) = match key {
        // One write, no record: nothing to replay.
        None => {
            state.users.create(&user, &WriteToken::generate()).await?;
            (user, false)
        }
        Some(key) => {
            let outcome = write_once(
                &state,
                &key,
                &user,
                Precondition::Absent,
                StatusCode::CREATED,
            )
            .await?;
            (outcome.user, outcome.replayed)
        }
    };
    let location = format!("/api/v1/users/{}", user.user_id);
    let mut response = (StatusCode::CREATED, Json(&user)).into_response();
    let headers = response.headers_mut();
    if replayed {
        headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    headers.insert(
        LOCATION,
        HeaderValue::from_str(&location).expect("validated id"),
    );
    headers.insert(ETAG, etag(user.version));
    Ok(response)
}

/// Reads a user.
#[utoipa::path(get, path = "/api/v1/users/{user_id}", params(("user_id" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$")),
    responses((status = 200, body = User, headers(("ETag" = String))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn get_user(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
) -> Result<Response, ApiError> {
    checked_id(&user_id)?;
    let stored = state
        .users
        .get_versioned(&Key::new(user_id.as_str()), Consistency::Strong)
        .await?
        .ok_or(ApiError::NotFound)?;
    let user = User {
        version: stored.version,
        ..stored.item
    };
    let mut response = Json(&user).into_response();
    response.headers_mut().insert(ETAG, etag(user.version));
    Ok(response)
}

/// Replaces a user's e-mail and name, if it is still at the `If-Match` version.
#[utoipa::path(put, path = "/api/v1/users/{user_id}", request_body = UserChange,
    params(("user_id" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$"), ("If-Match" = String, Header, pattern = "^(W/)?\"?[0-9]{1,19}\"?$", description = "The ETag of the version being changed"),
        ("Idempotency-Key" = Option<String>, Header, nullable = false, pattern = "^[!-~]{1,255}$", description = "Repeat a request safely: the same caller, key and request replay the first result; the key with another request is 422")),
    responses((status = 200, description = "Changed (or replayed: `Idempotent-Replayed: true`)", body = User),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 412, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 428, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn update_user(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    checked_id(&user_id)?;
    let expected = if_match(&headers)?.ok_or(ApiError::PreconditionRequired)?;
    let change: UserChange = json_body(&headers, &body)?;
    change.validate().map_err(ApiError::InvalidInput)?;
    let version = expected.to_string();
    let key = IdempotencyKey::from_request(
        &headers,
        caller.as_deref(),
        &Method::PUT,
        &format!("/api/v1/users/{user_id}"),
        &[&version, &change.email, &change.name],
    )?;
    let user = User {
        user_id,
        email: change.email,
        name: change.name,
        version: expected + 1,
    };
    let (status, user, replayed) = match key {
        // If-Match already makes the write safe to retry: a repeat that
        // finds the version moved is told so (412).
        None => {
            state
                .users
                .update_versioned(&user, expected, &WriteToken::generate())
                .await?;
            (StatusCode::OK, user, false)
        }
        Some(key) => {
            let outcome = write_once(
                &state,
                &key,
                &user,
                Precondition::Version(expected),
                StatusCode::OK,
            )
            .await?;
            (outcome.status, outcome.user, outcome.replayed)
        }
    };
    let mut response = (status, Json(&user)).into_response();
    response.headers_mut().insert(ETAG, etag(user.version));
    if replayed {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Deletes a user (only at the `If-Match` version, when given).
#[utoipa::path(delete, path = "/api/v1/users/{user_id}",
    params(("user_id" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$"), ("If-Match" = Option<String>, Header, nullable = false, pattern = "^(W/)?\"?[0-9]{1,19}\"?$")),
    responses((status = 204, description = "Deleted"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 412, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn delete_user(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    checked_id(&user_id)?;
    let condition = match if_match(&headers)? {
        Some(version) => DeleteCondition::AtVersion(version),
        None => DeleteCondition::MustExist,
    };
    state
        .users
        .delete(&Key::new(user_id.as_str()), condition)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
