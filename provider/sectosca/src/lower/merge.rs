//! Merging several policies of one type on one unikernel. The stricter setting always wins:
//! deny beats allow, lower limits beat higher ones, more auditing beats less. The result
//! does not depend on the order policies are written in. What cannot be merged is a conflict.

use std::collections::{BTreeMap, BTreeSet};

use crate::check::Policy;
use crate::diagnostic::{Code, Sink};
use crate::lower::plan::{
    AuditPlan, AuthenticationPlan, AuthorizationRulePlan, AuthorizationRuleSet, Credential, EgressRulePlan,
    FirewallPlan, HardeningPlan, HttpPlan, IngressRulePlan, IngressRuleSet, JwtPlan, PrincipalPlan, RateLimitPlan,
};
use crate::model::policies::{
    AuditProperties, AuditSink, AuthenticationProperties, AuthorizationProperties, FirewallProperties, HardeningLevel,
    HardeningProperties, IsolationProperties, Protocol, RateScope,
};
use crate::model::{Effect, Trust};

mod egress;
use egress::{egress_rules, intersect_egress};

// The plan's defaults live with the plan: the runtime falls back on some of them too.
pub use ::plan::defaults::{
    DEFAULT_ANSWER_TIMEOUT_SECONDS, DEFAULT_AUDIT_EVENTS, DEFAULT_BODY_TIMEOUT_SECONDS, DEFAULT_HEADER_TIMEOUT_SECONDS,
    DEFAULT_IDLE_TIMEOUT_SECONDS, DEFAULT_LEEWAY_SECONDS, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONNECTIONS_PER_SOURCE, DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_UPSTREAM_CONNECTIONS, DEFAULT_REALM,
    DEFAULT_ROLES_CLAIM, DEFAULT_UPSTREAM_WAIT_SECONDS, HEALTH_PATH,
};

/// The `audience` that accepts tokens whatever their `aud` claim.
pub const ANY_AUDIENCE: &str = "any";

/// Reports a conflict at the later of two policies.
fn conflict(sink: &mut Sink<'_>, node: &str, first: &Policy, second: &Policy, what: String) {
    let (a, b) = if first.path <= second.path { (first, second) } else { (second, first) };
    sink.report(
        Code::PolicyConflict,
        b.span,
        &b.path,
        format!("on `{node}`, `{}` and `{}` conflict: {what}", a.name, b.name),
    )
    .hint = Some("make the policies agree, or target them at different unikernels".into());
}

pub fn authentication(
    node: &str,
    policies: &[(&Policy, &AuthenticationProperties)],
    sink: &mut Sink<'_>,
) -> Option<AuthenticationPlan> {
    let ((first_policy, first), rest) = policies.split_first()?;
    let scheme = first.scheme.value;
    let mut realm: Option<(&Policy, &str)> = None;
    let mut principals: BTreeMap<String, (&Policy, PrincipalPlan)> = BTreeMap::new();
    let mut jwt: Option<(&Policy, JwtPlan)> = None;
    let mut ok = true;

    for (policy, props) in std::iter::once((first_policy, first)).chain(rest.iter().map(|(p, a)| (p, a))) {
        if props.scheme.value != scheme {
            conflict(
                sink,
                node,
                first_policy,
                policy,
                format!("schemes {scheme} and {} cannot both hold", props.scheme.value),
            );
            ok = false;
            continue;
        }
        if let Some(r) = &props.realm {
            match realm {
                Some((other, seen)) if seen != r => {
                    conflict(sink, node, other, policy, format!("realms `{seen}` and `{r}` differ"));
                    ok = false;
                }
                _ => realm = Some((policy, r)),
            }
        }
        for p in props.principals.iter().flatten() {
            let credential = match (&p.password_hash, &p.token_sha256, &p.public_key, &p.algorithm) {
                (Some(h), _, _, _) => Credential::PasswordHash(h.value.clone()),
                (_, Some(t), _, _) => Credential::TokenSha256(t.value.clone()),
                (_, _, Some(k), Some(algorithm)) => {
                    Credential::PublicKey { algorithm: algorithm.value, kind: k.value.kind, pem: k.value.pem.clone() }
                }
                _ => continue, // reported by the checker
            };
            let roles = sorted(p.roles.iter().flatten().map(|r| r.value.clone()));
            let plan = PrincipalPlan { name: p.name.value.clone(), credential, roles };
            match principals.get_mut(&plan.name) {
                // Twice in one policy: the checker has reported the duplicate name already.
                Some((other, _)) if other.name == policy.name => {}
                Some((other, seen)) if seen.credential != plan.credential => {
                    conflict(sink, node, other, policy, format!("principal `{}` has different credentials", plan.name));
                    ok = false;
                }
                // The same principal in two policies keeps only the roles both grant.
                Some((_, seen)) => seen.roles.retain(|r| plan.roles.contains(r)),
                None => {
                    principals.insert(plan.name.clone(), (policy, plan));
                }
            }
        }
        // A jwt policy without settings holds the defaults, which another policy's settings
        // must not loosen (its leeway, for one).
        let settings = props.jwt.as_ref().map(|j| &j.value);
        if settings.is_some() || props.scheme.value == crate::model::policies::Scheme::Jwt {
            let next = JwtPlan {
                issuer: settings.and_then(|j| j.issuer.clone()),
                // `any` is written as no audience: tokens are accepted whatever their `aud`.
                audience: settings
                    .and_then(|j| j.audience.as_ref())
                    .map(|a| a.value.clone())
                    .filter(|a| a != ANY_AUDIENCE),
                roles_claim: settings.and_then(|j| j.roles_claim.clone()).unwrap_or_else(|| DEFAULT_ROLES_CLAIM.into()),
                role_map: settings.and_then(|j| j.role_map.clone()).unwrap_or_default(),
                leeway_seconds: settings.and_then(|j| j.leeway).map_or(DEFAULT_LEEWAY_SECONDS, |s| s.0),
            };
            jwt = match jwt.take() {
                None => Some((policy, next)),
                Some((other, mut seen)) => {
                    let fields_agree = |a: &mut Option<String>, b: Option<String>, what: &str| match (a.as_ref(), b) {
                        (Some(x), Some(y)) if *x != y => Err(format!("{what} `{x}` and `{y}` differ")),
                        (None, y) => {
                            *a = y;
                            Ok(())
                        }
                        _ => Ok(()),
                    };
                    let mut problems: Vec<String> = [
                        fields_agree(&mut seen.issuer, next.issuer, "jwt issuers"),
                        fields_agree(&mut seen.audience, next.audience, "jwt audiences"),
                    ]
                    .into_iter()
                    .filter_map(Result::err)
                    .collect();
                    // A policy without `roles_claim` reads the default claim: it disagrees with
                    // one that names another, rather than silently losing its roles.
                    if seen.roles_claim != next.roles_claim {
                        problems.push(format!("roles claims `{}` and `{}` differ", seen.roles_claim, next.roles_claim));
                    }
                    for (k, v) in next.role_map {
                        match seen.role_map.get(&k) {
                            Some(existing) if *existing != v => {
                                problems.push(format!("claim `{k}` maps to `{existing}` and `{v}`"))
                            }
                            _ => {
                                seen.role_map.insert(k, v);
                            }
                        }
                    }
                    seen.leeway_seconds = seen.leeway_seconds.min(next.leeway_seconds);
                    for p in problems {
                        conflict(sink, node, other, policy, p);
                        ok = false;
                    }
                    Some((other, seen))
                }
            };
        }
    }
    // Credentials reach the application only when every policy asks for it.
    let forward_credentials = policies.iter().all(|(_, props)| props.forward_credentials.unwrap_or(false));
    ok.then(|| AuthenticationPlan {
        forward_credentials,
        scheme,
        realm: realm.map_or(DEFAULT_REALM, |(_, r)| r).to_owned(),
        principals: principals.into_values().map(|(_, p)| p).collect(),
        // Scheme jwt without settings still gets the defaults written out, for the runtime.
        jwt: jwt.map(|(_, j)| j).or_else(|| {
            (scheme == crate::model::policies::Scheme::Jwt).then(|| JwtPlan {
                issuer: None,
                audience: None,
                roles_claim: DEFAULT_ROLES_CLAIM.into(),
                role_map: BTreeMap::new(),
                leeway_seconds: DEFAULT_LEEWAY_SECONDS,
            })
        }),
    })
}

/// One rule set per policy; a request must pass all of them.
pub fn authorization(policies: &[(&Policy, &AuthorizationProperties)]) -> Vec<AuthorizationRuleSet> {
    let mut sets: Vec<AuthorizationRuleSet> = policies
        .iter()
        .map(|(policy, props)| AuthorizationRuleSet {
            policy: policy.name.clone(),
            default: props.default.unwrap_or(Effect::Deny),
            rules: props
                .rules
                .iter()
                .flatten()
                .map(|r| AuthorizationRulePlan {
                    roles: sorted(r.roles.iter().flatten().map(|s| s.value.clone())),
                    methods: sorted(r.methods.iter().flatten().copied()),
                    paths: sorted(r.paths.iter().flatten().cloned()),
                    effect: r.effect,
                })
                .collect(),
        })
        .collect();
    sets.sort();
    sets
}

/// Sorted without duplicates, as a set would give them, without a tree's allocations.
pub(super) fn sorted<T: Ord>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut items: Vec<T> = items.into_iter().collect();
    items.sort();
    items.dedup();
    items
}

pub fn firewall(node: &str, policies: &[(&Policy, &FirewallProperties)], sink: &mut Sink<'_>) -> FirewallPlan {
    let mut ingress = Vec::new();
    // None until a policy declares `egress`: a policy without it has no say.
    let mut egress: Option<Vec<EgressRulePlan>> = None;
    let mut allowed_methods: Option<(&Policy, BTreeSet<_>)> = None;
    let mut deny_paths = Vec::new();
    let mut limits: BTreeMap<RateScope, RateLimitPlan> = BTreeMap::new();
    // Each policy's effective limit, given or by default, and the lowest of them: a policy
    // that says nothing still holds the default, which another policy must not raise.
    let mut max_body_bytes = None::<u64>;
    let mut max_header_bytes = None::<u64>;
    let mut header_timeout_seconds = None::<u64>;
    let mut body_timeout_seconds = None::<u64>;
    let mut idle_timeout_seconds = None::<u64>;
    let mut max_connections = None::<u64>;
    let mut max_connections_per_source = None::<u64>;
    let mut max_upstream_connections = None::<u64>;
    let mut upstream_wait_seconds = None::<u64>;
    let mut answer_timeout_seconds = None::<u64>;
    let lowest = |acc: &mut Option<u64>, v: u64| *acc = Some(acc.map_or(v, |a| a.min(v)));

    for (policy, props) in policies {
        let rules = props.ingress.as_deref().unwrap_or_default();
        let default = props.default.unwrap_or(if rules.is_empty() { Effect::Allow } else { Effect::Deny });
        if !rules.is_empty() || default == Effect::Deny {
            ingress.push(IngressRuleSet {
                policy: policy.name.clone(),
                default,
                rules: rules
                    .iter()
                    .map(|r| IngressRulePlan {
                        from: sorted(r.from.iter().flat_map(|f| f.0.iter().copied())),
                        ports: sorted(r.ports.iter().flat_map(|p| p.0.iter().copied())),
                        protocol: r.protocol.unwrap_or(Protocol::Tcp),
                        action: r.action,
                    })
                    .collect(),
            });
        }
        if let Some(rules) = &props.egress {
            let these = egress_rules(rules);
            egress = Some(match egress {
                None => these,
                Some(seen) => intersect_egress(&seen, &these),
            });
        }
        if let Some(http) = &props.http {
            if let Some(methods) = &http.methods {
                let these: BTreeSet<_> = methods.iter().copied().collect();
                allowed_methods = Some(match allowed_methods {
                    Some((first, seen)) => {
                        let both: BTreeSet<_> = seen.intersection(&these).copied().collect();
                        if both.is_empty() && !seen.is_empty() && !these.is_empty() {
                            conflict(
                                sink,
                                node,
                                first,
                                policy,
                                "no HTTP method is allowed by both, so every request would be refused".into(),
                            );
                        }
                        (first, both)
                    }
                    None => (policy, these),
                });
            }
            deny_paths.extend(http.deny_paths.iter().flatten().cloned());
        }
        let http = props.http.as_ref();
        lowest(&mut max_body_bytes, http.and_then(|h| h.max_body_bytes).map_or(DEFAULT_MAX_BODY_BYTES, |b| b.0));
        lowest(&mut max_header_bytes, http.and_then(|h| h.max_header_bytes).map_or(DEFAULT_MAX_HEADER_BYTES, |b| b.0));
        lowest(
            &mut header_timeout_seconds,
            http.and_then(|h| h.header_timeout).map_or(DEFAULT_HEADER_TIMEOUT_SECONDS, |s| s.0),
        );
        lowest(
            &mut body_timeout_seconds,
            http.and_then(|h| h.body_timeout).map_or(DEFAULT_BODY_TIMEOUT_SECONDS, |s| s.0),
        );
        lowest(
            &mut idle_timeout_seconds,
            http.and_then(|h| h.idle_timeout).map_or(DEFAULT_IDLE_TIMEOUT_SECONDS, |s| s.0),
        );
        lowest(&mut max_connections, http.and_then(|h| h.max_connections).map_or(DEFAULT_MAX_CONNECTIONS, |b| b.0));
        lowest(
            &mut max_connections_per_source,
            http.and_then(|h| h.max_connections_per_source).map_or(DEFAULT_MAX_CONNECTIONS_PER_SOURCE, |b| b.0),
        );
        lowest(
            &mut max_upstream_connections,
            http.and_then(|h| h.max_upstream_connections).map_or(DEFAULT_MAX_UPSTREAM_CONNECTIONS, |b| b.0),
        );
        lowest(
            &mut upstream_wait_seconds,
            http.and_then(|h| h.upstream_wait).map_or(DEFAULT_UPSTREAM_WAIT_SECONDS, |s| s.0),
        );
        lowest(
            &mut answer_timeout_seconds,
            http.and_then(|h| h.answer_timeout).map_or(DEFAULT_ANSWER_TIMEOUT_SECONDS, |s| s.0),
        );
        if let Some(rl) = &props.rate_limit {
            let per = rl.per.unwrap_or(RateScope::Source);
            let rps = rl.requests_per_second.0;
            let next = RateLimitPlan { per, requests_per_second: rps, burst: rl.burst.map_or(rps, |b| b.0) };
            limits
                .entry(per)
                .and_modify(|l| {
                    l.requests_per_second = l.requests_per_second.min(next.requests_per_second);
                    l.burst = l.burst.min(next.burst);
                })
                .or_insert(next);
        }
    }
    ingress.sort();
    FirewallPlan {
        ingress,
        egress: egress.unwrap_or_default(),
        http: HttpPlan {
            allowed_methods: allowed_methods.map(|(_, m)| m.into_iter().collect()),
            deny_paths: sorted(deny_paths),
            max_body_bytes: max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES),
            max_header_bytes: max_header_bytes.unwrap_or(DEFAULT_MAX_HEADER_BYTES),
            header_timeout_seconds: header_timeout_seconds.unwrap_or(DEFAULT_HEADER_TIMEOUT_SECONDS),
            body_timeout_seconds: body_timeout_seconds.unwrap_or(DEFAULT_BODY_TIMEOUT_SECONDS),
            idle_timeout_seconds: idle_timeout_seconds.unwrap_or(DEFAULT_IDLE_TIMEOUT_SECONDS),
            max_connections: max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
            max_connections_per_source: max_connections_per_source.unwrap_or(DEFAULT_MAX_CONNECTIONS_PER_SOURCE),
            max_upstream_connections: max_upstream_connections.unwrap_or(DEFAULT_MAX_UPSTREAM_CONNECTIONS),
            upstream_wait_seconds: upstream_wait_seconds.unwrap_or(DEFAULT_UPSTREAM_WAIT_SECONDS),
            answer_timeout_seconds: answer_timeout_seconds.unwrap_or(DEFAULT_ANSWER_TIMEOUT_SECONDS),
            health_path: HEALTH_PATH.into(),
        },
        rate_limits: limits.into_values().collect(),
    }
}

pub fn hardening(policies: &[&HardeningProperties]) -> HardeningPlan {
    let level = policies.iter().filter_map(|h| h.level).max().unwrap_or(HardeningLevel::Baseline);
    // Each policy's effective value (its default is true); any true wins.
    let any_true = |get: fn(&HardeningProperties) -> Option<bool>| {
        policies.is_empty() || policies.iter().any(|h| get(h).unwrap_or(true))
    };
    HardeningPlan {
        level,
        read_only_root: any_true(|h| h.read_only_root),
        seccomp: any_true(|h| h.seccomp),
        max_lifetime_seconds: policies.iter().filter_map(|h| h.max_lifetime).map(|s| s.0).min(),
        no_shell: true,
        no_package_manager: true,
        drop_capabilities: true,
        no_new_privileges: true,
    }
}

/// Kernel settings a hardening level asks for.
pub fn kernel_cmdline(level: HardeningLevel) -> Vec<String> {
    let baseline = ["debugfs=off", "init_on_alloc=1", "slab_nomerge", "vsyscall=none"];
    let strict = ["init_on_free=1", "oops=panic", "page_alloc.shuffle=1", "randomize_kstack_offset=on"];
    let mut cmdline: Vec<String> = baseline.iter().map(|s| (*s).to_owned()).collect();
    if level == HardeningLevel::Strict {
        cmdline.extend(strict.iter().map(|s| (*s).to_owned()));
    }
    cmdline.sort();
    cmdline
}

#[derive(Debug)]
pub struct Isolation {
    pub min_trust: Option<Trust>,
    pub tenants: Option<Vec<String>>,
    pub dedicated_host: bool,
}

pub fn isolation(node: &str, policies: &[(&Policy, &IsolationProperties)], sink: &mut Sink<'_>) -> Isolation {
    let mut tenants: Option<(&Policy, BTreeSet<String>)> = None;
    for (policy, props) in policies {
        let Some(list) = &props.tenants else { continue };
        let these: BTreeSet<String> = list.value.iter().cloned().collect();
        tenants = Some(match tenants {
            None => (policy, these),
            Some((first, seen)) => {
                let both: BTreeSet<String> = seen.intersection(&these).cloned().collect();
                if both.is_empty() {
                    conflict(sink, node, first, policy, "their tenant lists have no tenant in common".into());
                }
                (first, both)
            }
        });
    }
    Isolation {
        min_trust: policies.iter().filter_map(|(_, p)| p.min_trust.as_ref().map(|t| t.value)).max(),
        tenants: tenants.map(|(_, t)| t.into_iter().collect()),
        dedicated_host: policies.iter().any(|(_, p)| p.dedicated_host.as_ref().is_some_and(|d| d.value)),
    }
}

pub fn audit(policies: &[&AuditProperties]) -> AuditPlan {
    let events = policies.iter().flat_map(|a| a.events.clone().unwrap_or_else(|| DEFAULT_AUDIT_EVENTS.to_vec()));
    AuditPlan { events: sorted(events), sink: AuditSink::Console }
}
