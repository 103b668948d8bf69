//! What the direct path borrows from the SDK: an interceptor on the
//! `ResilientClient`'s SDK client that, on a GetItem the SDK sends, keeps the
//! SDK's runtime components (HTTP client, identity cache and resolvers, time
//! source), its timeouts, and the address the SDK's endpoint rules chose for
//! that table. The first GetItem of each table goes through the SDK; the
//! next ones can go direct to the same address with the same credentials.
//!
//! Only a GetItem that [`DirectGet::through_sdk`](super::DirectGet) sends is
//! captured: one `ResilientClient::get_item` built from the client's own
//! configuration. A GetItem a caller sends through `ResilientClient::call`
//! may carry a per-call configuration override (another endpoint, other
//! credentials); what it resolved must not become every later read's.

use std::sync::{Arc, OnceLock, RwLock};

use aws_sdk_dynamodb::config::interceptors::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::get_item::GetItemInput;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::identity::SharedIdentityResolver;
use aws_smithy_runtime_api::client::runtime_components::GetIdentityResolver;
use aws_smithy_types::config_bag::{FrozenLayer, Layer, Storable, StoreReplace};
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use std::collections::HashMap;
use std::time::Duration;

use super::SIGV4;

/// The SDK's parts, as the first captured GetItem had them, with everything
/// the direct path needs from them derived once.
#[derive(Debug, Clone)]
pub(crate) struct Borrowed {
    pub(crate) components: RuntimeComponents,
    /// The SigV4 credentials provider (the identity cache resolves through it).
    pub(crate) resolver: SharedIdentityResolver,
    /// The SDK's HTTP connector, with its connect and read timeouts.
    pub(crate) connector: SharedHttpConnector,
    /// The timeout and retry settings the identity cache reads (to bound a
    /// credentials load).
    pub(crate) settings: FrozenLayer,
    /// The tighter of the SDK's operation and attempt timeouts, which its
    /// orchestrator would have applied to a single attempt.
    pub(crate) attempt_timeout: Option<Duration>,
}

impl Borrowed {
    /// `None` when the SDK client cannot be gone around: it does not sign
    /// with SigV4 (anonymous, a bearer token) or has no HTTP client.
    fn from_sdk(components: &RuntimeComponents, cfg: &ConfigBag) -> Option<Borrowed> {
        let resolver = components.identity_resolver(SIGV4)?;
        let timeouts = cfg
            .load::<TimeoutConfig>()
            .cloned()
            .unwrap_or_else(TimeoutConfig::disabled);
        let mut settings = HttpConnectorSettings::builder();
        settings.set_connect_timeout(timeouts.connect_timeout());
        settings.set_read_timeout(timeouts.read_timeout());
        let connector = components
            .http_client()?
            .http_connector(&settings.build(), components);
        let attempt_timeout = match (
            timeouts.operation_timeout(),
            timeouts.operation_attempt_timeout(),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut layer = Layer::new("dynagate::direct_get");
        layer.store_put(timeouts);
        layer.store_put(
            cfg.load::<RetryConfig>()
                .cloned()
                .unwrap_or_else(RetryConfig::disabled),
        );
        Some(Borrowed {
            components: components.clone(),
            resolver,
            connector,
            settings: layer.freeze(),
            attempt_timeout,
        })
    }
}

/// What the interceptor has seen: the SDK's parts (once) and, per table, the
/// request address its endpoint rules resolved.
#[derive(Debug, Default)]
pub(crate) struct Captured {
    /// `None` inside: the client cannot be gone around (see `Borrowed::from_sdk`).
    pub(crate) borrowed: OnceLock<Option<Borrowed>>,
    pub(crate) addresses: RwLock<HashMap<String, String>>,
}

impl Captured {
    /// The address of `table`, when a GetItem on it has been seen.
    pub(crate) fn address(&self, table: &str) -> Option<String> {
        self.addresses
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(table)
            .cloned()
    }
}

tokio::task_local! {
    /// Set around the SDK fallback of `ResilientClient::get_item`: the only
    /// GetItem whose parts are captured.
    static CAPTURING: ();
}

/// Runs `send` (a GetItem through the SDK, without overrides) so that the
/// interceptor captures what it resolved.
pub(crate) async fn capturing<F: std::future::Future>(send: F) -> F::Output {
    CAPTURING.scope((), send).await
}

/// The table of the GetItem in flight, from its input to its transmission.
#[derive(Debug, Clone)]
struct TableInFlight(String);

impl Storable for TableInFlight {
    type Storer = StoreReplace<Self>;
}

/// Registered on the SDK client of a `ResilientClient` with direct reads on.
#[derive(Debug, Clone)]
pub(crate) struct CaptureInterceptor(pub(crate) Arc<Captured>);

impl Intercept for CaptureInterceptor {
    fn name(&self) -> &'static str {
        "dynagate::DirectGetCapture"
    }

    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if CAPTURING.try_with(|_| ()).is_err() {
            return Ok(());
        }
        if let Some(table) = context
            .input()
            .downcast_ref::<GetItemInput>()
            .and_then(GetItemInput::table_name)
            && self.0.address(table).is_none()
        {
            cfg.interceptor_state()
                .store_put(TableInFlight(table.to_owned()));
        }
        Ok(())
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(TableInFlight(table)) = cfg.load::<TableInFlight>().cloned() else {
            return Ok(());
        };
        self.0
            .borrowed
            .get_or_init(|| Borrowed::from_sdk(components, cfg));
        let address = context.request().uri().to_owned();
        self.0
            .addresses
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(table, address);
        Ok(())
    }
}
