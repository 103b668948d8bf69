//! One request through the proxy: identify it, draw its faults, ask the
//! capacity model, forward it, charge reads, and answer (or drop the answer).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use rand::RngExt;
use rand::rngs::StdRng;
use serde_json::{Map, Value, json};

use crate::admission::{Admission, admit, charge_reads, reads_limited};
use crate::capacity::{CapacityModel, Charge};
use crate::config::Upstream;
use crate::forward::{self, without_hop_by_hop};
use crate::inject::{self, ErrorKind, FullBody, ThrottleReason};
use crate::operation::{self, Class};
use crate::rules::{Active, Effective, RuleSet};
use crate::stats::{OperationStats, Stats};
use crate::units::HalfUnits;
use crate::{batch, consumed, control, page};

/// What the proxy answers with: its own responses, or the upstream's streamed.
pub(crate) type ProxyBody = Either<Full<Bytes>, Incoming>;

/// The state every connection shares.
pub(crate) struct Shared {
    pub(crate) rules: RwLock<Arc<Active>>,
    pub(crate) capacity: Mutex<CapacityModel>,
    pub(crate) rng: Mutex<StdRng>,
    pub(crate) stats: Mutex<Stats>,
    pub(crate) client: Client<HttpConnector, Full<Bytes>>,
    pub(crate) upstream: Upstream,
}

/// Ends the client connection without a response: returned to hyper, which
/// then closes the connection without writing anything.
#[derive(Debug)]
pub(crate) struct Abort(&'static str);

impl std::fmt::Display for Abort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Abort {}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn rules(&self) -> Arc<Active> {
        self.rules
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_rules(&self, rules: RuleSet) {
        *self.rules.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(Active::new(rules));
    }

    pub(crate) fn record(
        &self,
        table: &str,
        operation: &str,
        update: impl FnOnce(&mut OperationStats),
    ) {
        update(lock(&self.stats).entry(table, operation));
    }

    /// Every random decision of one request, drawn together from the one RNG.
    fn draw(&self, rules: &Active, effective: &Effective, write: bool) -> Faults {
        let mut rng = lock(&self.rng);
        let latency = effective.latency;
        let jitter = if latency.jitter_ms > 0 {
            rng.random_range(0..=latency.jitter_ms)
        } else {
            0
        };
        // Counted on every request, before the draws: the RNG sequence is the
        // same with or without it.
        let past_grace = rules.past_errors_after(effective.errors_after);
        let inject = ErrorKind::ALL.into_iter().find(|kind| {
            let p = effective.errors.get(kind).copied().unwrap_or(0.0);
            p > 0.0 && rng.random_bool(p)
        });
        // Counted only when drawn, so the RNG sequence is the same with or
        // without a limit.
        let inject = inject
            .filter(|_| past_grace)
            .filter(|_| rules.take_injection(effective.error_limit));
        let drop =
            write && effective.drop_response > 0.0 && rng.random_bool(effective.drop_response);
        Faults {
            delay: Duration::from_millis(latency.fixed_ms.saturating_add(jitter)),
            inject,
            drop,
        }
    }
}

struct Faults {
    delay: Duration,
    inject: Option<ErrorKind>,
    drop: bool,
}

/// A request, identified.
pub(crate) struct Call {
    pub(crate) operation: String,
    pub(crate) class: Class,
    pub(crate) region: String,
    pub(crate) primary: String,
    pub(crate) json: Value,
    pub(crate) rules: Arc<Active>,
}

impl Call {
    /// The key a read names, for a hot key's bucket: `GetItem`'s; other
    /// reads name none.
    pub(crate) fn read_key(&self) -> Option<&Map<String, Value>> {
        if self.operation == "GetItem" {
            self.json["Key"].as_object()
        } else {
            None
        }
    }

    pub(crate) fn effective(&self, table: &str) -> Effective {
        self.rules.resolve(table, &self.operation)
    }

    /// A capacity charge on `table` for `cost`, keyed by the partition key
    /// value found in `key_source` when the table has a hot-key limit.
    pub(crate) fn charge<'a>(
        table: &'a str,
        effective: &'a Effective,
        key_source: Option<&Map<String, Value>>,
        cost: HalfUnits,
    ) -> Charge<'a> {
        Charge {
            table,
            capacity: effective.capacity.as_ref(),
            hot_key: effective.hot_key.as_ref(),
            key_value: effective
                .hot_key
                .as_ref()
                .and_then(|hot| operation::key_value(key_source, &hot.partition_key)),
            cost,
        }
    }

    pub(crate) fn throttled(
        &self,
        shared: &Shared,
        table: &str,
        reason: ThrottleReason,
    ) -> Response<FullBody> {
        shared.record(&self.primary, &self.operation, |s| {
            *s.throttled.entry(reason.to_string()).or_default() += 1;
        });
        inject::throttled(reason, &self.region, table)
    }
}

/// Answers one request; every answer carries a `Date`, as DynamoDB's do.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Abort> {
    let mut response = answer(shared, request).await?;
    // Kept when present: the upstream's own, or an injected skewed one.
    response
        .headers_mut()
        .entry(header::DATE)
        .or_insert_with(|| crate::dates::http_date(std::time::SystemTime::now()));
    Ok(response)
}

async fn answer(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Abort> {
    if request.uri().path().starts_with("/_fault") {
        return Ok(control::handle(&shared, request).await.map(Either::Left));
    }
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|_| Abort("reading the request body failed"))?
        .to_bytes();
    let header_str = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let operation = header_str("x-amz-target")
        .and_then(operation::operation_from_target)
        .unwrap_or_default()
        .to_owned();
    let region = header_str(header::AUTHORIZATION.as_str())
        .and_then(inject::region_from_authorization)
        .unwrap_or("us-east-1")
        .to_owned();
    let json: Value = if operation.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    };
    let primary = operation::tables(&operation, &json)
        .into_iter()
        .next()
        .unwrap_or_default();
    let call = Call {
        class: operation::class(&operation),
        operation,
        region,
        primary,
        json,
        rules: shared.rules(),
    };
    let effective = call.effective(&call.primary);
    let write = operation::is_write(&call.operation);
    shared.record(&call.primary, &call.operation, |s| s.requests += 1);

    let faults = shared.draw(&call.rules, &effective, write);
    if !faults.delay.is_zero() {
        tokio::time::sleep(faults.delay).await;
    }
    if let Some(kind) = faults.inject {
        shared.record(&call.primary, &call.operation, |s| {
            *s.injected.entry(kind.to_string()).or_default() += 1;
        });
        let injection = inject::Injection {
            write,
            region: &call.region,
            table: &call.primary,
            shape: &effective.shape,
            signed_at: header_str("x-amz-date"),
        };
        return Ok(inject::injected(kind, &injection).map(Either::Left));
    }

    let (body, held_back) = match admit(&shared, &call, body) {
        Admission::Forward { body, held_back } => (body, held_back),
        Admission::Reject(response) => return Ok(response.map(Either::Left)),
    };

    // A priced Query or Scan whose answer hides what it read (filtered,
    // projected, counted): learn what it reads first, and stop it there.
    let priced_page = page::is_page(&call.operation) && reads_limited(&effective);
    let read = if priced_page && page::needs_companion(&call.json) {
        forward::companion(&shared, &parts, &call.json).await
    } else {
        None
    };
    let body = match read
        .as_ref()
        .and_then(|read| page::bounded(&call.json, read))
    {
        Some(bounded) => Bytes::from(bounded.to_string()),
        None => body,
    };

    let response = match forward::send(&shared, &parts, body).await {
        Ok(response) => response,
        Err(error) => {
            shared.record(&call.primary, &call.operation, |s| s.upstream_errors += 1);
            let message = format!("fault proxy: upstream {} failed: {error}", shared.upstream);
            return Ok(inject::json_response(
                StatusCode::BAD_GATEWAY,
                &json!({"message": message}),
            )
            .map(Either::Left));
        }
    };
    shared.record(&call.primary, &call.operation, |s| s.forwarded += 1);

    let (mut parts, body) = response.into_parts();
    parts.headers = without_hop_by_hop(parts.headers);
    let reads = matches!(call.class, Class::Read | Class::BatchGet);
    if !faults.drop && !reads && held_back.is_none() {
        return Ok(Response::from_parts(parts, Either::Right(body)));
    }
    // The whole answer is needed: to price a read, to add held-back items, or
    // to be sure the upstream applied a write whose answer is then dropped.
    let bytes = body
        .collect()
        .await
        .map_err(|_| Abort("reading the upstream response failed"))?
        .to_bytes();
    if faults.drop {
        shared.record(&call.primary, &call.operation, |s| s.dropped_responses += 1);
        return Err(Abort("response dropped by fault injection"));
    }
    if parts.status != StatusCode::OK {
        return Ok(Response::from_parts(parts, Either::Left(Full::new(bytes))));
    }
    let Ok(mut answer) = serde_json::from_slice::<Value>(&bytes) else {
        return Ok(Response::from_parts(parts, Either::Left(Full::new(bytes))));
    };
    let mut changed = false;
    if reads {
        let costs = match &read {
            Some(read) => vec![(
                call.primary.clone(),
                page::cost(&call.json, page::items_read(read, &answer)),
            )],
            None => operation::read_costs(&call.operation, &call.json, &answer),
        };
        charge_reads(&shared, &call, &costs);
        if priced_page && let Some((_, cost)) = costs.first() {
            changed = consumed::report(&call.json, &mut answer, *cost);
        }
    }
    if let Some(held) = held_back {
        batch::merge_unprocessed(&call.operation, &mut answer, held);
        changed = true;
    }
    let bytes = if changed {
        parts.headers.remove(header::CONTENT_LENGTH);
        // The SDK checks the body against this checksum when present.
        parts.headers.remove("x-amz-crc32");
        Bytes::from(answer.to_string())
    } else {
        bytes
    };
    Ok(Response::from_parts(parts, Either::Left(Full::new(bytes))))
}
