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
}
