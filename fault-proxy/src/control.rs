//! The control endpoints, on the proxy's own port:
//!
//! - `GET /_fault/stats`: the counters, as JSON ([`Stats`](crate::Stats));
//! - `GET /_fault/rules`: the rules in force, as a JSON array;
//! - `PUT /_fault/rules`: replace the rules (a JSON array, as in the config file);
//! - `POST /_fault/reset`: zero the counters.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::json;

use crate::inject::FullBody;
use crate::proxy::{Shared, lock};
use crate::rules::RuleSet;
use crate::stats::Stats;

pub(crate) async fn handle(shared: &Shared, request: Request<Incoming>) -> Response<FullBody> {
    let method = request.method().clone();
    match (method, request.uri().path()) {
        (Method::GET, "/_fault/stats") => {
            let stats = lock(&shared.stats).clone();
            json_response(
                StatusCode::OK,
                &serde_json::to_value(stats).unwrap_or_default(),
            )
        }
        (Method::GET, "/_fault/rules") => {
            let rules = shared.rules();
            json_response(
                StatusCode::OK,
                &serde_json::to_value(rules.set()).unwrap_or_default(),
            )
        }
        (Method::PUT, "/_fault/rules") => {
            let body = match request.into_body().collect().await {
                Ok(body) => body.to_bytes(),
                Err(e) => return error(StatusCode::BAD_REQUEST, &format!("reading the body: {e}")),
            };
            let text = String::from_utf8_lossy(&body);
            match RuleSet::from_json(&text) {
                Ok(rules) => {
                    let count = rules.rules().len();
                    shared.set_rules(rules);
                    json_response(StatusCode::OK, &json!({ "rules": count }))
                }
                Err(e) => error(StatusCode::BAD_REQUEST, &e.to_string()),
            }
        }
        (Method::POST, "/_fault/reset") => {
            *lock(&shared.stats) = Stats::default();
            json_response(StatusCode::OK, &json!({ "reset": true }))
        }
        (_, "/_fault/stats" | "/_fault/rules" | "/_fault/reset") => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed on this control endpoint",
        ),
        _ => error(
            StatusCode::NOT_FOUND,
            "unknown control endpoint: use GET /_fault/stats, GET or PUT /_fault/rules, POST /_fault/reset",
        ),
    }
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<FullBody> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn error(status: StatusCode, message: &str) -> Response<FullBody> {
    json_response(status, &json!({ "error": message }))
}
