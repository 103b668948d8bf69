//! GetItem without the SDK's orchestrator: one signed POST through the SDK's
//! own HTTP client, with the SDK's credentials, to the address the SDK's
//! endpoint rules chose.
//!
//! Why: a GetItem through `aws-sdk-dynamodb`'s orchestrator assembles its
//! runtime components from plugins, runs a dozen interceptors, builds the
//! user agent and type-erases every step, on every call. On a service whose
//! work is mostly one GetItem per request that is the largest share of its
//! CPU (`benches/compare/profile_get.sh`); the SDK's maintainers measured the
//! assembly alone at "on the order of 50us per request" and call it
//! "significantly slower than using Hyper directly" (smithy-rs issue #4127,
//! "Support driving operations from pre built runtime components").
//!
//! What the direct path keeps from the SDK, borrowed from the first GetItem
//! of each table the SDK sends ([`capture`]): the HTTP client (its TLS, pool,
//! connect and read timeouts), the identity cache and credentials provider,
//! the time source, the operation and attempt timeouts, and the request
//! address per table. What it does itself: the JSON body and answer
//! ([`wire`], into the SDK's own `GetItemOutput` and `SdkError`, so the retry
//! classification and the repository cannot tell the paths apart) and SigV4
//! with `aws-sigv4`, the crate the SDK signs with. What it leaves out: the
//! SDK's interceptors (dynagate's own consumed-capacity interceptor is
//! applied by hand), the user agent, clock-skew correction of the signing
//! time, and stalled-stream protection (every attempt is bounded by the retry
//! policy's deadline).

pub(crate) mod capture;
pub(crate) mod wire;

use std::sync::Arc;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::get_item::{GetItemError, GetItemInput, GetItemOutput};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::auth::AuthSchemeId;
use aws_smithy_runtime_api::client::http::HttpConnector;
use aws_smithy_runtime_api::client::identity::ResolveCachedIdentity;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use http_body_util::BodyExt;

use crate::capacity::consumed;
use capture::{Borrowed, CaptureInterceptor, Captured};

/// The signing name of DynamoDB.
const SERVICE: &str = "dynamodb";
/// The SDK's identifier of SigV4 (`aws_runtime::auth::sigv4::SCHEME_ID`).
pub(crate) const SIGV4: AuthSchemeId = AuthSchemeId::new("sigv4");

type Outcome = Result<GetItemOutput, SdkError<GetItemError, HttpResponse>>;

/// The direct GetItem path of one `ResilientClient` (cheap to clone).
#[derive(Debug, Clone)]
pub(crate) struct DirectGet {
    captured: Arc<Captured>,
    region: String,
}

impl DirectGet {
    /// A direct path that signs for `region`, and the interceptor to put on
    /// the SDK client whose parts it borrows.
    pub(crate) fn new(region: String) -> (DirectGet, CaptureInterceptor) {
        let captured = Arc::new(Captured::default());
        let interceptor = CaptureInterceptor(captured.clone());
        (DirectGet { captured, region }, interceptor)
    }

    /// Sends `send`, a GetItem through the SDK built from `input` alone, so
    /// that what it resolves is captured for the next direct calls.
    pub(crate) async fn through_sdk<F: std::future::Future>(&self, send: F) -> F::Output {
        capture::capturing(send).await
    }

    /// Sends `input` directly, or gives it back when its table has not been
    /// seen through the SDK yet (the caller then sends it through the SDK,
    /// which captures what the next call needs).
    pub(crate) async fn send(&self, input: GetItemInput) -> Result<Outcome, GetItemInput> {
        let Some(borrowed) = self.captured.borrowed.get().and_then(Option::as_ref) else {
            return Err(input);
        };
        let Some(address) = input.table_name().and_then(|t| self.captured.address(t)) else {
            return Err(input);
        };
        let call = self.call(borrowed, &address, input);
        Ok(match borrowed.attempt_timeout {
            Some(limit) => match tokio::time::timeout(limit, call).await {
                Ok(outcome) => outcome,
                Err(elapsed) => Err(SdkError::timeout_error(elapsed)),
            },
            None => call.await,
        })
    }

    async fn call(&self, borrowed: &Borrowed, address: &str, mut input: GetItemInput) -> Outcome {
        if consumed::wanted() {
            consumed::ask_for_capacity(&mut input.return_consumed_capacity);
        }
        let body = wire::request_body(&input).map_err(SdkError::construction_failure)?;
        let request = self
            .signed(borrowed, address, body)
            .await
            .map_err(SdkError::construction_failure)?;
        let response = borrowed
            .connector
            .call(request)
            .await
            .map_err(SdkError::dispatch_failure)?;
        let (status, headers, body) = {
            let status = response.status();
            let headers = response.headers().clone();
            let collected = response.into_body().collect().await;
            (status, headers, collected)
        };
        let bytes = match body {
            Ok(collected) => collected.to_bytes(),
            Err(error) => {
                let mut raw = HttpResponse::new(status, SdkBody::empty());
                *raw.headers_mut() = headers;
                return Err(SdkError::response_error(error, raw));
            }
        };
        let mut raw = HttpResponse::new(status, SdkBody::from(bytes.clone()));
        *raw.headers_mut() = headers;
        if !status.is_success() {
            let meta = wire::error_metadata(raw.headers().get("x-amzn-errortype"), &bytes);
            return Err(SdkError::service_error(GetItemError::generic(meta), raw));
        }
        let output = wire::output(&bytes).map_err(|e| SdkError::response_error(e, raw))?;
        consumed::record_read(output.consumed_capacity());
        Ok(output)
    }

    /// The request, signed with SigV4 in the headers, as the SDK signs
    /// DynamoDB's requests (no payload hash header; the session token, when
    /// there is one, signed).
    async fn signed(
        &self,
        borrowed: &Borrowed,
        address: &str,
        body: Vec<u8>,
    ) -> Result<HttpRequest, Box<dyn std::error::Error + Send + Sync>> {
        let components = &borrowed.components;
        let mut cfg = ConfigBag::base();
        cfg.push_shared_layer(borrowed.settings.clone());
        let identity = components
            .identity_cache()
            .resolve_cached_identity(borrowed.resolver.clone(), components, &cfg)
            .await?;
        let uri: http::Uri = address.parse()?;
        let host = uri
            .authority()
            .ok_or("the request address has no host")?
            .to_string();
        let mut request = http::Request::post(uri)
            .header("content-type", wire::CONTENT_TYPE)
            .header("x-amz-target", wire::TARGET)
            .header("host", host)
            .header("content-length", body.len())
            .body(())?;
        let now = components
            .time_source()
            .map(|t| t.now())
            .unwrap_or_else(std::time::SystemTime::now);
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(SERVICE)
            .time(now)
            .settings(SigningSettings::default())
            .build()?
            .into();
        let signable = SignableRequest::new(
            "POST",
            address,
            request
                .headers()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))),
            SignableBody::Bytes(&body),
        )?;
        let (instructions, _signature) = sign(signable, &params)?.into_parts();
        instructions.apply_to_request_http1x(&mut request);
        let (parts, ()) = request.into_parts();
        Ok(HttpRequest::try_from(http::Request::from_parts(
            parts,
            SdkBody::from(body),
        ))?)
    }
}
