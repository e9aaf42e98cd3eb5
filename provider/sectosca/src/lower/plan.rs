//! The enforcement plan: what one unikernel's image and runtime must enforce. The types are
//! the plan crate's, shared with the runtime in the guest, which must not link the compiler.

pub use ::plan::{
    AuditPlan, AuthenticationPlan, AuthorizationRulePlan, AuthorizationRuleSet, BuildPlan, ChangeKind, Credential,
    EgressRulePlan, EnforcementPlan, FirewallPlan, FlowPlan, HardeningPlan, HostPlan, HttpPlan, IngressRulePlan,
    IngressRuleSet, JwtPlan, PLAN_FORMAT, PlacementPlan, PrincipalPlan, Provenance, RateLimitPlan, RuntimePlan,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(instances: u32, rate: u32, level: &str) -> EnforcementPlan {
        let doc = format!(
            "tosca_definitions_version: tosca_simple_yaml_1_3\ntopology_template:\n  node_templates:\n    api: {{ type: sdsec.nodes.Unikernel, properties: {{ instances: {instances} }} }}\n  policies:\n    - fw: {{ type: sdsec.policies.Firewall, targets: [api], properties: {{ rate_limit: {{ requests_per_second: {rate} }} }} }}\n    - h: {{ type: sdsec.policies.Hardening, targets: [api], properties: {{ level: {level} }} }}\n"
        );
        let c = crate::compile_str("t", &doc);
        assert!(!c.has_errors(), "{:?}", c.diagnostics);
        c.plans["api"].clone()
    }

    #[test]
    fn changes_are_classified_by_what_they_touch() {
        let base = plan(1, 10, "baseline");
        assert_eq!(base.change_from(&base), ChangeKind::None);
        assert_eq!(plan(3, 10, "baseline").change_from(&base), ChangeKind::None, "scaling needs no new image");
        assert_eq!(
            plan(1, 5, "baseline").change_from(&base),
            ChangeKind::InPlace,
            "a rate limit is reconfigured in place"
        );
        assert_eq!(plan(1, 10, "strict").change_from(&base), ChangeKind::Replace, "hardening is built into the image");
    }

    fn with_egress(properties: &str) -> EnforcementPlan {
        let doc = format!(
            "tosca_definitions_version: tosca_simple_yaml_1_3\ntopology_template:\n  node_templates:\n    api: {{ type: sdsec.nodes.Unikernel }}\n  policies:\n    - fw: {{ type: sdsec.policies.Firewall, targets: [api], properties: {properties} }}\n"
        );
        let c = crate::compile_str("t", &doc);
        assert!(!c.has_errors(), "{:?}", c.diagnostics);
        c.plans["api"].clone()
    }

    #[test]
    fn an_egress_change_is_applied_in_place() {
        let none = with_egress("{ rate_limit: { requests_per_second: 10 } }");
        let some =
            with_egress("{ rate_limit: { requests_per_second: 10 }, egress: [ { to: 10.0.0.0/8, ports: 443 } ] }");
        let other = with_egress(
            "{ rate_limit: { requests_per_second: 10 }, egress: [ { to: 10.0.0.0/8, ports: 443 }, { to: 192.0.2.53, protocol: udp, ports: 53 } ] }",
        );
        assert_eq!(some.runtime.firewall.egress.len(), 1);
        assert_ne!(some.digest(), none.digest());
        for (new, old) in [(&some, &none), (&none, &some), (&other, &some)] {
            assert_eq!(new.change_from(old), ChangeKind::InPlace, "egress is reconfigured in place by the host");
        }
        // `egress: []` is the default, none: the same plan, byte for byte.
        assert_eq!(with_egress("{ rate_limit: { requests_per_second: 10 }, egress: [] }").digest(), none.digest());
    }

    fn two_authentications(a: &str, b: &str) -> EnforcementPlan {
        let key = "MCowBQYDK2VwAyEA+GzW6KPUIL9XL+9xcq6k5TFfey5GXYtF+6ZlVlgK2RY=";
        let policy = |name: &str, props: &str| {
            format!(
                "    - {name}:\n        type: sdsec.policies.Authentication\n        targets: [api]\n        properties:\n          scheme: jwt\n{props}          principals:\n            - name: idp\n              algorithm: EdDSA\n              public_key: |\n                -----BEGIN PUBLIC KEY-----\n                {key}\n                -----END PUBLIC KEY-----\n"
            )
        };
        let doc = format!(
            "tosca_definitions_version: tosca_simple_yaml_1_3\ntopology_template:\n  node_templates:\n    api: {{ type: sdsec.nodes.Unikernel }}\n  policies:\n{}{}",
            policy("one", a),
            policy("two", b)
        );
        let c = crate::compile_str("t", &doc);
        assert!(!c.has_errors(), "{:?}", c.diagnostics);
        c.plans["api"].clone()
    }

    #[test]
    fn credentials_are_forwarded_only_when_every_policy_asks() {
        let auth = |a: &str, b: &str| two_authentications(a, b).runtime.authentication.map(|a| a.forward_credentials);
        let any = "          jwt: { audience: any }\n";
        let forward = "          jwt: { audience: any }\n          forward_credentials: true\n";
        assert_eq!(auth(any, any), Some(false), "the default is false");
        assert_eq!(auth(forward, any), Some(false), "one policy that does not ask keeps them");
        assert_eq!(auth(forward, forward), Some(true));
    }

    #[test]
    fn a_named_audience_narrows_audience_any() {
        let jwt = |a: &str, b: &str| two_authentications(a, b).runtime.authentication.and_then(|a| a.jwt);
        let any = "          jwt: { audience: any }\n";
        let named = "          jwt: { audience: orders-api }\n";
        assert_eq!(jwt(any, any).and_then(|j| j.audience), None, "any is written as no audience");
        assert_eq!(jwt(any, named).and_then(|j| j.audience).as_deref(), Some("orders-api"));
        assert_eq!(jwt(named, any).and_then(|j| j.audience).as_deref(), Some("orders-api"));
    }

    #[test]
    fn timeouts_and_connection_caps_merge_lowest_and_default_safely() {
        let defaults = with_egress("{ rate_limit: { requests_per_second: 10 } }").runtime.firewall.http;
        assert_eq!(
            (
                defaults.body_timeout_seconds,
                defaults.idle_timeout_seconds,
                defaults.max_connections,
                defaults.max_connections_per_source,
                defaults.max_upstream_connections,
                defaults.upstream_wait_seconds,
                defaults.answer_timeout_seconds
            ),
            (30, 30, 512, 64, 64, 5, 60)
        );
        let doc = "tosca_definitions_version: tosca_simple_yaml_1_3\ntopology_template:\n  node_templates:\n    api: { type: sdsec.nodes.Unikernel }\n  policies:\n    - a: { type: sdsec.policies.Firewall, targets: [api], properties: { http: { body_timeout: 5s, max_connections: 1000, max_upstream_connections: 8 } } }\n    - b: { type: sdsec.policies.Firewall, targets: [api], properties: { http: { idle_timeout: 2m, max_connections_per_source: 4, upstream_wait: 1s, answer_timeout: 2m } } }\n";
        let c = crate::compile_str("t", doc);
        assert!(!c.has_errors(), "{:?}", c.diagnostics);
        let http = &c.plans["api"].runtime.firewall.http;
        assert_eq!(http.body_timeout_seconds, 5);
        assert_eq!(http.idle_timeout_seconds, 30, "b cannot raise what a holds by default");
        assert_eq!(http.max_connections, 512, "raising a cap needs every policy to raise it");
        assert_eq!(
            (http.max_connections_per_source, http.max_upstream_connections, http.upstream_wait_seconds),
            (4, 8, 1)
        );
        assert_eq!(http.answer_timeout_seconds, 60, "b cannot raise the default a holds");
    }
}
