//! The users API: dynagate's reference service, users in DynamoDB behind
//! Redis rate limits.
//!
//! [`Config`] holds the settings ([`Config::from_env`] reads them), [`build`]
//! connects to DynamoDB and Redis and returns the [`AppState`] with the
//! rate-limit layer, [`app`] builds the router and [`run`] serves it.
//! `main.rs` wires it from the environment; the tests wire it to their own
//! tables and serve it on a real socket on port 0.
//!
//! | module | holds |
//! |---|---|
//! | `config` | the settings and the environment they come from |
//! | `state` | what the handlers share, and `build` |
//! | `capacity` | the users table's capacity gate |
//! | `limits` | the quotas as a rate-limit layer |
//! | `keys` | API keys: issued, stored hashed, looked up |
//! | `key_admin` | operator actions by key id: revoke, rotate, suspend |
//! | `suspension` | abuse signals of a key: many addresses, the penalty box |
//! | `key_cache` | recent lookups, valid and refused keys bounded apart |
//! | `bounded` | a map that evicts its oldest entries past a bound |
//! | `model` | what clients send and get, and its validation |
//! | `routes` | the handlers of `/api/v1/users/{user_id}` and create |
//! | `lists` | `GET /api/v1/users`: pages, the email lookup, sealed cursors |
//! | `idempotency` | `Idempotency-Key`: bound to the caller and the request, replayed |
//! | `errors` | every error as a response, in one place |
//! | `readiness` | `/readyz` |
//! | `telemetry` | request ids, the log line per request, metrics |
//! | `openapi` | the `/openapi.json` document |
//! | `app` | the router and the server |

mod app;
mod bounded;
mod capacity;
pub mod config;
pub mod errors;
mod idempotency;
pub mod key_admin;
mod key_cache;
mod key_record;
pub mod key_tags;
pub mod keys;
mod limits;
pub mod lists;
pub mod model;
mod openapi;
pub mod readiness;
pub mod routes;
mod state;
pub mod suspension;
mod telemetry;

pub use app::{BODY_LIMIT, app, ops_app, run};
pub use config::{Config, Quotas, TableCapacitySetting};
pub use limits::{LIST_READ_UNITS, WRITE_UNITS, WRITE_UNITS_KEYED, check_rate_limit_config};
pub use openapi::ApiDoc;
pub use state::{AppState, EMAIL_INDEX, Shared, build};
pub use telemetry::metrics_handle;
