//! Stage 4, lower: one enforcement plan per unikernel, merging the policies that apply.

pub mod merge;
pub mod plan;

use std::collections::{BTreeMap, BTreeSet};

use crate::check::{Checked, Policy, PolicyProperties};
use crate::diagnostic::Sink;
use crate::model::Trust;
use plan::{BuildPlan, EnforcementPlan, FlowPlan, HostPlan, PLAN_FORMAT, PlacementPlan, Provenance, RuntimePlan};

const DEFAULT_PORT: u16 = 8080;
const DEFAULT_MEMORY_MB: u64 = 128;

pub fn lower(checked: &Checked, sink: &mut Sink<'_>) -> BTreeMap<String, EnforcementPlan> {
    // Who may connect to whom: the reverse of every connects_to.
    let mut accepts_from: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (name, u) in &checked.unikernels {
        for peer in &u.connects_to {
            accepts_from.entry(peer.as_str()).or_default().insert(name.clone());
        }
    }

    // The policies that apply to each unikernel, in document order, found in one pass, by
    // the unikernel's place in name order: a binary search of a list costs less than a tree.
    let names: Vec<&str> = checked.unikernels.keys().map(String::as_str).collect();
    let mut by_target: Vec<Vec<&Policy>> = vec![Vec::new(); names.len()];
    for policy in &checked.policies {
        for target in &policy.targets {
            if let Ok(i) = names.binary_search(&target.as_str()) {
                by_target[i].push(policy);
            }
        }
    }

    let mut plans = BTreeMap::new();
    for ((name, unikernel), applying) in checked.unikernels.iter().zip(by_target) {
        macro_rules! of_kind {
            ($variant:ident) => {
                applying
                    .iter()
                    .filter_map(|p| match &p.properties {
                        PolicyProperties::$variant(props) => Some((*p, props)),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
            };
        }
        let authentication = merge::authentication(name, &of_kind!(Authentication), sink);
        let authorization = merge::authorization(&of_kind!(Authorization));
        let firewall = merge::firewall(name, &of_kind!(Firewall), sink);
        let hardening_props: Vec<_> = of_kind!(Hardening).into_iter().map(|(_, h)| h).collect();
        let hardening = merge::hardening(&hardening_props);
        let audit_props: Vec<_> = of_kind!(Audit).into_iter().map(|(_, a)| a).collect();
        let audit = merge::audit(&audit_props);
        let isolation = merge::isolation(name, &of_kind!(Isolation), sink);

        let mut quarantine = false;
        let mut adaptations = Vec::new();
        for p in &applying {
            if let PolicyProperties::Adaptation { active: true, quarantine: q } = p.properties {
                quarantine |= q;
                adaptations.push(p.name.clone());
            }
        }
        // Sorted, as the plan promises: the digest must not depend on the policies' order.
        adaptations.sort();

        let host = unikernel.host.as_ref().and_then(|h| {
            checked.hypervisors.get(h).map(|props| HostPlan {
                name: h.clone(),
                site: props.site.clone(),
                tenant: props.tenant.clone(),
                trust: props.trust.unwrap_or(Trust::Shared),
                driver: props.driver,
            })
        });
        let props = &unikernel.properties;
        let plan = EnforcementPlan {
            format: PLAN_FORMAT,
            node: name.clone(),
            runtime: RuntimePlan {
                quarantine,
                authentication,
                authorization,
                firewall,
                audit,
                flows: FlowPlan {
                    connects_to: unikernel.connects_to.clone(),
                    accepts_from: accepts_from
                        .get(name.as_str())
                        .map(|s| s.iter().cloned().collect())
                        .unwrap_or_default(),
                },
            },
            build: BuildPlan {
                port: props.port.map_or(DEFAULT_PORT, |p| p.0),
                memory_mb: props.memory_mb.map_or(DEFAULT_MEMORY_MB, |m| m.0),
                vcpus: props.vcpus.map_or(1, |v| v.0),
                kernel_cmdline: merge::kernel_cmdline(hardening.level),
                hardening,
            },
            placement: PlacementPlan {
                host,
                min_trust: isolation.min_trust,
                tenants: isolation.tenants,
                dedicated_host: isolation.dedicated_host,
            },
            instances: props.instances.map_or(1, |i| i.0),
            provenance: Provenance { policies: merge::sorted(applying.iter().map(|p| p.name.clone())), adaptations },
        };
        plans.insert(name.clone(), plan);
    }
    plans
}
