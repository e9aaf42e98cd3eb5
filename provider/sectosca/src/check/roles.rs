//! Roles that authorization rules name against those the principals of the same targets
//! can have.

use std::collections::{BTreeMap, BTreeSet};

use super::{Checked, PolicyProperties};
use crate::decode::closest;
use crate::diagnostic::{Code, Sink};
use crate::model::policies::Scheme;

/// Warns about authorization rules naming roles that no principal of the same targets has.
pub(super) fn check_roles(checked: &Checked, sink: &mut Sink<'_>) {
    // Authentication policies by target, so that each authorization policy looks only at
    // those sharing one of its targets.
    let mut authentication_on: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, policy) in checked.policies.iter().enumerate() {
        if matches!(policy.properties, PolicyProperties::Authentication(_)) {
            for target in &policy.targets {
                authentication_on.entry(target.as_str()).or_default().push(i);
            }
        }
    }
    for policy in &checked.policies {
        let PolicyProperties::Authorization(authz) = &policy.properties else { continue };
        let mut known: BTreeSet<&str> = BTreeSet::new();
        let sharing: BTreeSet<usize> = policy
            .targets
            .iter()
            .flat_map(|t| authentication_on.get(t.as_str()).into_iter().flatten().copied())
            .collect();
        for other in sharing.into_iter().map(|i| &checked.policies[i]) {
            let PolicyProperties::Authentication(a) = &other.properties else { continue };
            for p in a.principals.iter().flatten() {
                known.extend(p.roles.iter().flatten().map(|r| r.value.as_str()));
            }
            // Claim values become roles only through the role map: without one, none do.
            if a.scheme.value == Scheme::Jwt
                && let Some(map) = a.jwt.as_ref().and_then(|j| j.value.role_map.as_ref())
            {
                known.extend(map.values().map(String::as_str));
            }
        }
        for rule in authz.rules.iter().flatten() {
            for role in rule.roles.iter().flatten().filter(|r| !known.contains(r.value.as_str())) {
                let d = sink.report(
                    Code::UnknownRole,
                    role.span,
                    &role.path,
                    format!("no principal of the targets has role `{}`: this rule never matches", role.value),
                );
                let names: Vec<&str> = known.iter().copied().collect();
                d.hint = Some(match closest(&role.value, &names) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None if names.is_empty() => {
                        "no Authentication policy with principals applies to these targets".into()
                    }
                    None => format!("roles principals have: {}", names.join(", ")),
                });
            }
        }
    }
}
