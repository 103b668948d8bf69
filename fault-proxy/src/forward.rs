//! Sending requests on to the upstream: the client's, and a page's
//! unfiltered companion, each with the client's method, path and headers
//! (less those that describe one connection).

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::Value;

use crate::page;
use crate::proxy::Shared;

/// Sends `body` to the upstream as the request `head` describes.
pub(crate) async fn send(
    shared: &Shared,
    head: &Parts,
    body: Bytes,
) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
    let length = body.len();
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = head.method.clone();
    *request.uri_mut() = shared
        .upstream
        .uri(head.uri.path_and_query().map_or("/", |p| p.as_str()));
    *request.headers_mut() = without_hop_by_hop(head.headers.clone());
    // The body may not be the client's (bounded, or a batch's part).
    request
        .headers_mut()
        .insert(header::CONTENT_LENGTH, length.into());
    shared.client.request(request).await
}

/// The answer of the unfiltered companion of the page `request` (see
/// [`page`]), or `None` when it failed: the real request then goes as it is
/// and is priced from what it returns. The companion carries the client's
/// headers, signature included, over a changed body: an upstream that checks
/// signatures (DynamoDB itself, not DynamoDB Local) would refuse it.
pub(crate) async fn companion(shared: &Shared, head: &Parts, request: &Value) -> Option<Value> {
    let body = Bytes::from(page::companion(request).to_string());
    let response = send(shared, head, body).await.ok()?;
    if response.status() != StatusCode::OK {
        return None;
    }
    let bytes = response.into_body().collect().await.ok()?.to_bytes();
    serde_json::from_slice(&bytes).ok()
}

/// Headers that describe one connection, not the message.
pub(crate) fn without_hop_by_hop(mut headers: HeaderMap) -> HeaderMap {
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers
}
