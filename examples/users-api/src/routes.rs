//! The handlers of `/api/v1/users`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use dynagate::repository::{Consistency, DeleteCondition, Key, WriteToken};
use http::header::{CONTENT_TYPE, ETAG, IF_MATCH, LOCATION};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::de::DeserializeOwned;

use crate::errors::ApiError;
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

/// The `Idempotency-Key` header as a write token, or a fresh token.
fn write_token(headers: &HeaderMap) -> Result<WriteToken, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(WriteToken::generate()),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| WriteToken::new(v).ok())
            .ok_or_else(|| {
                ApiError::InvalidInput(
                    "Idempotency-Key must be 1 to 255 printable ASCII characters".into(),
                )
            }),
    }
}

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
    params(("Idempotency-Key" = Option<String>, Header, nullable = false, pattern = "^[!-~]{1,255}$", description = "Repeat a request safely: the same key and body replay the first result")),
    responses(
        (status = 201, description = "Created (or replayed)", body = User),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn create_user(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let new: NewUser = json_body(&headers, &body)?;
    new.validate().map_err(ApiError::InvalidInput)?;
    let token = write_token(&headers)?;
    let user = User {
        user_id: new.user_id,
        email: new.email,
        name: new.name,
        version: 0,
    };
    let written = state.users.create(&user, &token).await?;
    let user = User {
        version: written.version.unwrap_or(1),
        ..user
    };
    let location = format!("/api/v1/users/{}", user.user_id);
    let mut response = (StatusCode::CREATED, Json(&user)).into_response();
    let headers = response.headers_mut();
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
    params(("user_id" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$"), ("If-Match" = String, Header, pattern = "^(W/)?\"?[0-9]{1,19}\"?$", description = "The ETag of the version being changed")),
    responses((status = 200, body = User),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 412, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 428, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn update_user(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    checked_id(&user_id)?;
    let expected = if_match(&headers)?.ok_or(ApiError::PreconditionRequired)?;
    let change: UserChange = json_body(&headers, &body)?;
    change.validate().map_err(ApiError::InvalidInput)?;
    let token = write_token(&headers)?;
    let user = User {
        user_id,
        email: change.email,
        name: change.name,
        version: 0,
    };
    let written = state
        .users
        .update_versioned(&user, expected, &token)
        .await?;
    let user = User {
        version: written.version.unwrap_or(expected + 1),
        ..user
    };
    let mut response = Json(&user).into_response();
    response.headers_mut().insert(ETAG, etag(user.version));
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
