//! The fault proxy in front of the tests' DynamoDB.

use super::env::dynamodb_endpoint;

/// A fault proxy on a free loopback port in front of the tests' DynamoDB,
/// applying `rules`, its randomness seeded with `seed`.
pub async fn fault_proxy(
    rules: Vec<dynagate_fault_proxy::Rule>,
    seed: u64,
) -> dynagate_fault_proxy::RunningProxy {
    use dynagate_fault_proxy::{FaultProxy, ProxyConfig, RuleSet, Upstream};
    let upstream = Upstream::parse(&dynamodb_endpoint())
        .expect("the fault proxy forwards to a plain http:// DynamoDB endpoint");
    let config = ProxyConfig::default()
        .with_listen("127.0.0.1:0".parse().expect("loopback address"))
        .with_upstream(upstream)
        .with_seed(seed)
        .with_rules(RuleSet::new(rules).expect("valid rules"));
    FaultProxy::start(config)
        .await
        .expect("the fault proxy starts")
}
