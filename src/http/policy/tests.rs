//! Policies: matching and building, and the layer enforcing them
//! (hermetic: the in-memory limiter on a paused clock).

use super::*;
use crate::limiter::Quota;

fn limits() -> Limits {
    Limits::single("writes", "second", Quota::per_second(1).burst(3).unwrap()).unwrap()
}

fn parts(method: Method) -> Parts {
    http::Request::builder()
        .method(method)
        .uri("/api/v1/users/ada")
        .body(())
        .unwrap()
        .into_parts()
        .0
}

#[test]
fn a_policy_matches_its_routes_and_methods_by_pattern() {
    let policy = Policy::builder(limits())
        .route(Method::PUT, "/api/v1/users/{user_id}")
        .route(Method::POST, "/api/v1/users")
        .build()
        .unwrap();
    let pattern = Some("/api/v1/users/{user_id}");
    assert!(policy.applies(&parts(Method::PUT), pattern));
    assert!(!policy.applies(&parts(Method::GET), pattern));
    assert!(!policy.applies(&parts(Method::PUT), Some("/api/v1/users/ada")));
    assert!(!policy.applies(&parts(Method::PUT), None));
}

#[test]
fn exemptions_and_charged_outcomes() {
    let policy = Policy::builder(limits())
        .any_method("/x")
        .exempt_when(|p| p.method == Method::HEAD)
        .charge_when(|s| !s.is_server_error())
        .build()
        .unwrap();
    assert!(policy.applies(&parts(Method::GET), Some("/x")));
    assert!(!policy.applies(&parts(Method::HEAD), Some("/x")));
    assert!(policy.charges(StatusCode::NOT_FOUND));
    assert!(!policy.charges(StatusCode::SERVICE_UNAVAILABLE));
}

#[test]
fn a_policy_without_routes_or_with_a_cost_it_cannot_hold_is_refused() {
    let error = Policy::builder(limits()).build().unwrap_err();
    assert!(
        error.to_string().contains("`writes` covers no route"),
        "{error}"
    );
    let error = Policy::builder(limits())
        .any_method("/x")
        .cost(4)
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("raise its burst"), "{error}");
}

mod layer {
    use std::net::SocketAddr;
    use std::sync::Mutex;
    use std::time::Duration;

    use axum::Router;
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use axum::routing::{get, post};
    use http::{Request, Response};
    use tower::ServiceExt;

    use super::*;
    use crate::http::{
        AuthFuture, Authenticate, Caller, Observed, PenaltyBox, RateLimitLayer,
        RateLimitLayerBuilder,
    };
    use crate::limiter::{MemoryLimiter, Quota};

    /// Knows the key `good`; remembers what the layer observed.
    #[derive(Debug, Default)]
    struct Keys {
        observed: Mutex<Vec<Observed>>,
    }

    impl Authenticate for Keys {
        fn authenticate<'a>(&'a self, _: &'a str) -> AuthFuture<'a> {
            Box::pin(async { Ok(Ok(self.cached("good").unwrap())) })
        }

        fn cached(&self, _: &str) -> Option<Caller> {
            Some(Caller {
                id: "k1".into(),
                limits: None,
            })
        }

        fn observe(&self, _: &Caller, observed: Observed) {
            self.observed.lock().unwrap().push(observed);
        }
    }

    fn per_second(namespace: &str, burst: u64) -> Limits {
        Limits::single(
            namespace,
            "second",
            Quota::per_second(1).burst(burst).unwrap(),
        )
        .unwrap()
    }

    fn builder(keys: &Arc<Keys>) -> RateLimitLayerBuilder {
        RateLimitLayer::builder(Arc::new(MemoryLimiter::new()))
            .key_limits(per_second("key", 100))
            .failed_auth(per_second("auth", 2))
            .authenticator(Arc::clone(keys) as Arc<dyn Authenticate>)
    }

    fn app(layer: RateLimitLayer) -> Router {
        Router::new()
            .route("/users", post(|| async { "created" }))
            .route(
                "/users/{id}",
                get(|| async { "user" }).put(|| async { "updated" }),
            )
            .route(
                "/boom",
                get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "busy") }),
            )
            .layer(layer)
    }

    async fn send(app: &Router, method: Method, path: &str) -> Response<Body> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("x-api-key", "good")
            .body(Body::empty())
            .unwrap();
        let peer: SocketAddr = "203.0.113.9:1".parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(request).await.unwrap()
    }

    async fn statuses(app: &Router, method: Method, path: &str, n: usize) -> Vec<u16> {
        let mut all = Vec::new();
        for _ in 0..n {
            all.push(send(app, method.clone(), path).await.status().as_u16());
            for _ in 0..10 {
                tokio::task::yield_now().await; // spawned refunds run
            }
        }
        all
    }

    #[tokio::test(start_paused = true)]
    async fn a_route_policy_limits_its_route_across_ids_and_leaves_others_alone() {
        let writes = Policy::builder(per_second("writes", 2))
            .route(Method::PUT, "/users/{id}")
            .build()
            .unwrap();
        let app = app(builder(&Arc::default()).policy(writes).build().unwrap());
        assert_eq!(send(&app, Method::PUT, "/users/a").await.status(), 200);
        assert_eq!(send(&app, Method::PUT, "/users/b").await.status(), 200);
        let third = send(&app, Method::PUT, "/users/c").await;
        assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            third.headers()["ratelimit-policy"],
            "\"writes.second\";q=2;w=2"
        );
        assert_eq!(send(&app, Method::GET, "/users/a").await.status(), 200);
    }

    #[tokio::test(start_paused = true)]
    async fn a_group_shares_one_bucket_and_each_policy_has_its_own_cost() {
        let group = Policy::builder(per_second("writes", 4))
            .route(Method::POST, "/users")
            .route(Method::PUT, "/users/{id}")
            .cost(2)
            .build()
            .unwrap();
        let app = app(builder(&Arc::default()).policy(group).build().unwrap());
        assert_eq!(send(&app, Method::POST, "/users").await.status(), 200);
        assert_eq!(send(&app, Method::PUT, "/users/a").await.status(), 200);
        assert_eq!(send(&app, Method::POST, "/users").await.status(), 429);
    }

    #[tokio::test(start_paused = true)]
    async fn exempt_requests_and_uncharged_outcomes_cost_nothing() {
        let reads = Policy::builder(per_second("reads", 2))
            .route(Method::GET, "/boom")
            .charge_when(|status| !status.is_server_error())
            .build()
            .unwrap();
        let exempt = Policy::builder(per_second("puts", 1))
            .route(Method::PUT, "/users/{id}")
            .exempt_when(|parts| parts.uri.path().ends_with("/internal"))
            .build()
            .unwrap();
        let app = app(builder(&Arc::default())
            .policy(reads)
            .policy(exempt)
            .build()
            .unwrap());
        // Every 503 is refunded: the bucket of 2 never runs out.
        assert_eq!(statuses(&app, Method::GET, "/boom", 6).await, [503; 6]);
        assert_eq!(
            statuses(&app, Method::PUT, "/users/internal", 4).await,
            [200; 4]
        );
        assert_eq!(statuses(&app, Method::PUT, "/users/x", 2).await, [200, 429]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_shadow_policy_and_a_shadow_layer_deny_nothing() {
        let shadow = Policy::builder(per_second("writes", 1))
            .route(Method::PUT, "/users/{id}")
            .shadow()
            .build()
            .unwrap();
        let shadowed = app(builder(&Arc::default()).policy(shadow).build().unwrap());
        assert_eq!(
            statuses(&shadowed, Method::PUT, "/users/a", 5).await,
            [200; 5]
        );

        let strict = builder(&Arc::default())
            .key_limits(per_second("key", 1))
            .shadow(true)
            .build()
            .unwrap();
        assert_eq!(
            statuses(&app(strict), Method::GET, "/users/a", 5).await,
            [200; 5]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_subject_denied_again_and_again_is_boxed_locally_and_its_key_store_told() {
        let keys = Arc::new(Keys::default());
        let rule = PenaltyBox::after_denials(3)
            .within(Duration::from_secs(10))
            .hold_for(Duration::from_secs(60))
            .unwrap();
        let layer = builder(&keys)
            .key_limits(per_second("key", 1))
            .penalty_box(rule)
            .build()
            .unwrap();
        let app = app(layer);
        assert_eq!(
            statuses(&app, Method::GET, "/users/a", 4).await,
            [200, 429, 429, 429]
        );
        assert!(
            keys.observed
                .lock()
                .unwrap()
                .contains(&Observed::PenaltyBox)
        );
        // The bucket refills, the box holds.
        tokio::time::advance(Duration::from_secs(5)).await;
        let boxed = send(&app, Method::GET, "/users/a").await;
        assert_eq!(boxed.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(boxed.headers()["retry-after"], "55");
        tokio::time::advance(Duration::from_secs(55)).await;
        assert_eq!(send(&app, Method::GET, "/users/a").await.status(), 200);
    }
}

mod file {
    use super::*;
    use crate::http::{PolicyFile, RateLimitLayer};
    use crate::limiter::MemoryLimiter;

    fn builder() -> crate::http::RateLimitLayerBuilder {
        let one = Limits::single("k", "s", Quota::per_second(10).burst(10).unwrap()).unwrap();
        RateLimitLayer::builder(Arc::new(MemoryLimiter::new()))
            .key_limits(one.clone())
            .failed_auth(one.clone())
            .anonymous(one)
    }

    fn apply(json: serde_json::Value) -> Result<(), String> {
        let file: PolicyFile = serde_json::from_value(json).map_err(|e| e.to_string())?;
        let layer = file.apply(builder()).map_err(|e| e.to_string())?;
        layer.build().map(|_| ()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_valid_file_builds() {
        apply(serde_json::json!({
            "shadow": true,
            "penalty_box": {"denials": 5, "within_secs": 10, "hold_secs": 60},
            "policy": [{
                "name": "writes", "routes": ["POST /users", "/users/{id}"], "per": "address",
                "cost": 2, "charge": "except-server-errors",
                "limits": [{"name": "minute", "rate": 30, "per": "minute", "burst": 10}]
            }]
        }))
        .unwrap();
    }

    #[test]
    fn every_problem_names_its_key() {
        let policy = |extra: serde_json::Value| {
            let mut p = serde_json::json!({
                "name": "writes", "routes": ["POST /users"],
                "limits": [{"name": "minute", "rate": 30, "per": "minute"}]
            });
            p.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            apply(serde_json::json!({ "policy": [p] })).unwrap_err()
        };
        let cases = [
            (
                serde_json::json!({"routes": ["FETCH users"]}),
                "`policy[0].routes[0]`",
            ),
            (
                serde_json::json!({"routes": ["get /users"]}),
                "`policy[0].routes[0]`",
            ),
            (serde_json::json!({"routes": []}), "`policy[0].routes`"),
            (serde_json::json!({"limits": []}), "`policy[0].limits`"),
            (
                serde_json::json!({"limits": [{"name": "m", "rate": 0, "per": "minute"}]}),
                "`policy[0].limits[0].rate`",
            ),
            (
                serde_json::json!({"limits": [{"name": "m", "rate": 5, "per": "minute", "burst": 0}]}),
                "`policy[0].limits[0].burst`",
            ),
            (serde_json::json!({"cost": 31}), "`policy[0]`"),
        ];
        for (extra, key) in cases {
            let error = policy(extra.clone());
            assert!(error.contains(key), "{extra}: {error}");
        }
        let twice = apply(serde_json::json!({ "policy": [
            {"name": "a", "routes": ["/x"], "limits": [{"name": "s", "rate": 1, "per": "second"}]},
            {"name": "a", "routes": ["/y"], "limits": [{"name": "s", "rate": 1, "per": "second"}]}
        ]}))
        .unwrap_err();
        assert!(twice.contains("`policy[1].name`"), "{twice}");
        let unknown = apply(serde_json::json!({"policies": []})).unwrap_err();
        assert!(unknown.contains("unknown field `policies`"), "{unknown}");
        let boxed = apply(
            serde_json::json!({"penalty_box": {"denials": 0, "within_secs": 1, "hold_secs": 1}}),
        )
        .unwrap_err();
        assert!(boxed.contains("`penalty_box`"), "{boxed}");
    }
}
