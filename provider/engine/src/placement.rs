//! Where a unikernel may run, checked at plan time against the hypervisor this provider
//! drives (its site, tenant and trust come from the provider configuration).

use plan::Driver;
use plan::EnforcementPlan;
use plan::Trust;

use crate::config::{Hypervisor, ProviderConfig};

/// Every placement requirement of `plan` this provider's hypervisor fails, as sentences
/// that say what to change.
pub fn violations(plan: &EnforcementPlan, config: &ProviderConfig) -> Vec<String> {
    let placement = &plan.placement;
    let node = &plan.node;
    let mut out = Vec::new();
    if let Some(host) = &placement.host {
        match &config.site {
            Some(site) if *site == host.site => {}
            Some(site) => out.push(format!(
                "`{node}` must run on host `{}` at site `{}`, but this provider's hypervisor is at site `{site}`; use a provider (alias) for that site",
                host.name, host.site
            )),
            None => out.push(format!(
                "`{node}` must run on host `{}` at site `{}`, but this provider declares no `site`; set `site = \"{}\"` in the provider block if its hypervisor is there",
                host.name, host.site, host.site
            )),
        }
        if let Some(tenant) = &host.tenant
            && config.tenant.as_ref() != Some(tenant)
        {
            out.push(format!(
                "host `{}` belongs to tenant `{tenant}`, but this provider's hypervisor is {}",
                host.name,
                config.tenant.as_ref().map_or("not assigned to a tenant".to_owned(), |t| format!("tenant `{t}`"))
            ));
        }
        let driver = match config.hypervisor {
            Hypervisor::Qemu => Driver::Qemu,
            Hypervisor::Libvirt => Driver::Libvirt,
        };
        if let Some(wanted) = host.driver
            && wanted != driver
        {
            let name = |d: Driver| if d == Driver::Qemu { "qemu" } else { "libvirt" };
            out.push(format!(
                "host `{}` is driven by {}, but this provider uses `hypervisor = \"{}\"`",
                host.name,
                name(wanted),
                name(driver)
            ));
        }
        if config.trust < host.trust {
            out.push(format!(
                "host `{}` is declared `{}` in the document, but this provider's hypervisor is only trusted as `{}`",
                host.name,
                host.trust.as_str(),
                config.trust.as_str()
            ));
        }
    }
    if let Some(min) = placement.min_trust
        && config.trust < min
    {
        out.push(format!(
            "`{node}` needs a host trusted at least as `{}`, but this provider's hypervisor is `{}` (provider setting `trust`)",
            min.as_str(),
            config.trust.as_str()
        ));
    }
    if let Some(tenants) = &placement.tenants
        && !config.tenant.as_ref().is_some_and(|t| tenants.contains(t))
    {
        out.push(format!(
            "`{node}` may run only on hosts of tenant {}, but this provider's hypervisor is {} (provider setting `tenant`)",
            tenants.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(" or "),
            config.tenant.as_ref().map_or("not assigned to a tenant".to_owned(), |t| format!("tenant `{t}`"))
        ));
    }
    if placement.dedicated_host && config.trust != Trust::Dedicated {
        out.push(format!(
            "`{node}` must be alone on its host; declare `trust = \"dedicated\"` only for a hypervisor that runs nothing else"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(document: &str) -> EnforcementPlan {
        let source = sectosca::Source::new("t.yaml", document);
        let compiled = sectosca::compile(&source, &Default::default(), &sectosca::Options::default());
        assert!(!compiled.has_errors(), "{:?}", compiled.diagnostics);
        compiled.plans["api"].clone()
    }

    fn config(site: Option<&str>, tenant: Option<&str>, trust: Trust) -> ProviderConfig {
        ProviderConfig {
            site: site.map(str::to_owned),
            tenant: tenant.map(str::to_owned),
            trust,
            ..ProviderConfig::new("/tmp/x".into())
        }
    }

    const ISOLATED: &str = r#"tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  node_templates:
    api: { type: sdsec.nodes.Unikernel }
  policies:
    - iso:
        type: sdsec.policies.Isolation
        targets: [api]
        properties: { min_trust: trusted, tenants: [shop] }
"#;

    #[test]
    fn isolation_is_checked_against_the_provider() {
        let plan = plan(ISOLATED);
        assert!(violations(&plan, &config(None, Some("shop"), Trust::Trusted)).is_empty());
        let found = violations(&plan, &config(None, Some("bank"), Trust::Shared));
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("at least as `trusted`") && found[1].contains("tenant `shop`"), "{found:?}");
        let found = violations(&plan, &config(None, None, Trust::Dedicated));
        assert!(found[0].contains("not assigned to a tenant"), "{found:?}");
    }

    #[test]
    fn a_host_requirement_needs_the_same_site() {
        let document = r#"tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  node_templates:
    paris: { type: sdsec.nodes.Hypervisor, properties: { site: paris, trust: trusted } }
    api:
      type: sdsec.nodes.Unikernel
      requirements: [ { host: paris } ]
"#;
        let plan = plan(document);
        assert!(violations(&plan, &config(Some("paris"), None, Trust::Trusted)).is_empty());
        let found = violations(&plan, &config(Some("lyon"), None, Trust::Shared));
        assert!(found[0].contains("site `paris`") && found[0].contains("`lyon`"), "{found:?}");
        assert!(found[1].contains("declared `trusted`"), "{found:?}");
        assert!(violations(&plan, &config(None, None, Trust::Trusted))[0].contains("declares no `site`"));
    }
}
