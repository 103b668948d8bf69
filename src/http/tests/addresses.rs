//! The layer's client addresses, hermetic: the per-address ceiling before
//! any lookup, IPv6 clients of one prefix sharing a bucket, and a forwarded
//! header a client cannot use to move itself.

use super::*;

#[tokio::test(start_paused = true)]
async fn the_ip_ceiling_refuses_before_any_lookup() {
    let keys = Arc::new(Keys::default());
    let app = app(builder(&keys).ip_ceiling(limits("ip", 1)).build().unwrap());
    assert_eq!(
        send(&app, "203.0.113.9:1", &[("x-api-key", "good")])
            .await
            .status(),
        StatusCode::OK
    );
    let response = send(&app, "203.0.113.9:1", &[("x-api-key", "other")]).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        header(&response, "ratelimit"),
        Some("\"ip.second\";r=0;t=1")
    );
    // The body names the policy the `RateLimit` field names.
    let body = problem(response).await;
    assert_eq!(body["type"], QUOTA_EXCEEDED);
    assert_eq!(body["title"], "Quota Exceeded");
    assert_eq!(body["violated-policies"], serde_json::json!(["ip.second"]));
    // The known key was checked from the cache with the ceiling in one call;
    // the unknown one was refused by the ceiling before its lookup.
    assert_eq!(keys.lookups.load(Ordering::SeqCst), 0);
}

/// Issue 14, point 5: one /64 gave 2^64 fresh buckets.
#[tokio::test(start_paused = true)]
async fn ipv6_clients_of_one_prefix_share_a_bucket() {
    let keys = Arc::new(Keys::default());
    let layer = builder(&keys).anonymous(limits("anon", 1)).build().unwrap();
    let app = app(layer);
    let first = send(&app, "[2001:db8:1:2::1]:1", &[]).await;
    assert_eq!(first.status(), StatusCode::OK);
    let same_64 = send(&app, "[2001:db8:1:2:ffff::9]:1", &[]).await;
    assert_eq!(same_64.status(), StatusCode::TOO_MANY_REQUESTS);
    let other_64 = send(&app, "[2001:db8:1:3::1]:1", &[]).await;
    assert_eq!(other_64.status(), StatusCode::OK);

    let per_128 = builder(&keys)
        .anonymous(limits("anon", 1))
        .ipv6_prefix(128)
        .build()
        .unwrap();
    let app = self::app(per_128);
    assert_eq!(
        send(&app, "[2001:db8::1]:1", &[]).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        send(&app, "[2001:db8::2]:1", &[]).await.status(),
        StatusCode::OK
    );
    assert!(builder(&keys).ipv6_prefix(129).build().is_err());
}

/// Issue 14, point 3: behind a proxy that writes `Forwarded`, a rotating
/// client `X-Forwarded-For` gave a fresh failed-auth bucket per request.
#[tokio::test(start_paused = true)]
async fn a_client_x_forwarded_for_does_not_move_it_behind_a_forwarded_proxy() {
    let keys = Arc::new(Keys::default());
    let proxies = TrustedProxies::parse("10.0.0.0/8")
        .unwrap()
        .header(ForwardedHeader::Forwarded);
    let app = app(builder(&keys).trusted_proxies(proxies).build().unwrap());
    let mut statuses = Vec::new();
    for n in 0..5 {
        let spoof = format!("6.6.6.{n}");
        let response = send(
            &app,
            "10.0.0.2:1",
            &[
                ("x-api-key", "nope"),
                ("x-forwarded-for", &spoof),
                ("forwarded", "for=203.0.113.9"),
            ],
        )
        .await;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 429, 429, 429]);
}
