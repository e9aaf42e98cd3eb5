//! Property tests of the compiler as a whole.
//!
//! (a) the digest does not depend on key order, flow or block style, comments or quoting;
//! (b) merging is commutative: the order of policies does not change the digest;
//! (c) merging never loosens: what one policy alone denies, the merged plan denies, and its
//!     limits are no higher;
//! (d) lowering never allows what an applicable policy, read by its own semantics, denies;
//!     egress allows exactly what every policy that declares it allows;
//! (e) the compiler never panics, whatever the input.
//!
//! Requests are judged by a small reference evaluator written here from the plan's documented
//! semantics (lower/plan.rs), and policies by a second one written from the profile's
//! semantics (SECTOSCA.md), so neither reuses the lowering under test.

// Test code fails by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::IpAddr;

use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use sectosca::{Compilation, EnforcementPlan, Options, Source};

// ---------------------------------------------------------------------------------------
// A small YAML tree and two writers that differ in every way that must not matter.

#[derive(Clone, Debug)]
enum Y {
    /// A string value: either writer may quote it.
    S(String),
    /// A whole number of a `Bounded` field: written in decimal or in hex.
    I(u64),
    /// A port: always plain decimal.
    P(u16),
    B(bool),
    L(Vec<Y>),
    M(Vec<(String, Y)>),
}

fn s(text: &str) -> Y {
    Y::S(text.to_owned())
}

fn m(entries: Vec<(&str, Y)>) -> Y {
    Y::M(entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

fn strs(items: &[&str]) -> Y {
    Y::L(items.iter().map(|x| s(x)).collect())
}

fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

fn plain_ok(text: &str) -> bool {
    text.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '/')
        && text.chars().all(|c| c.is_ascii_alphanumeric() || "._/*-".contains(c))
        && !matches!(text, "true" | "false" | "null" | "True" | "False" | "Null" | "NULL" | "TRUE" | "FALSE")
}

/// Writer one: block style, keys sorted, strings plain where they can be.
fn write_block(doc: &Y) -> String {
    fn scalar(y: &Y) -> String {
        match y {
            Y::S(t) if plain_ok(t) => t.clone(),
            Y::S(t) => quote(t),
            Y::I(n) => n.to_string(),
            Y::P(n) => n.to_string(),
            Y::B(b) => b.to_string(),
            Y::L(_) | Y::M(_) => unreachable!(),
        }
    }
    fn value(v: &Y, ind: usize, out: &mut String) {
        match v {
            Y::M(e) if e.is_empty() => out.push_str(" {}\n"),
            Y::L(e) if e.is_empty() => out.push_str(" []\n"),
            Y::M(_) | Y::L(_) => {
                out.push('\n');
                block(v, ind + 2, out);
            }
            _ => {
                out.push(' ');
                out.push_str(&scalar(v));
                out.push('\n');
            }
        }
    }
    fn block(y: &Y, ind: usize, out: &mut String) {
        match y {
            Y::M(entries) => {
                let mut sorted: Vec<&(String, Y)> = entries.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                for (k, v) in sorted {
                    out.push_str(&" ".repeat(ind));
                    out.push_str(k);
                    out.push(':');
                    value(v, ind, out);
                }
            }
            Y::L(items) => {
                for v in items {
                    out.push_str(&" ".repeat(ind));
                    out.push('-');
                    value(v, ind, out);
                }
            }
            _ => unreachable!(),
        }
    }
    let mut out = String::new();
    block(doc, 0, &mut out);
    out
}

/// A tiny deterministic generator for the flow writer's choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn chance(&mut self, one_in: u64) -> bool {
        self.next().is_multiple_of(one_in)
    }
}

/// Writer two: flow style over many lines, keys shuffled, every string quoted, numbers
/// sometimes in hex, comments and uneven white space everywhere they are allowed.
fn write_flow(doc: &Y, seed: u64) -> String {
    fn sep(rng: &mut Rng, ind: usize, out: &mut String) {
        let comment = rng.chance(3);
        if comment {
            out.push_str(" # a comment, with: {punctuation} [and] \"quotes\"");
        }
        if comment || rng.chance(2) {
            out.push('\n');
            out.push_str(&" ".repeat(ind + 1 + (rng.next() % 3) as usize));
        } else {
            out.push_str(&" ".repeat((rng.next() % 3) as usize));
        }
    }
    fn flow(y: &Y, ind: usize, rng: &mut Rng, out: &mut String) {
        match y {
            Y::S(t) => out.push_str(&quote(t)),
            Y::I(n) if rng.chance(2) => out.push_str(&format!("0x{n:X}")),
            Y::I(n) => out.push_str(&n.to_string()),
            Y::P(n) => out.push_str(&n.to_string()),
            Y::B(b) => out.push_str(if *b { "true" } else { "false" }),
            Y::M(entries) => {
                let mut order: Vec<usize> = (0..entries.len()).collect();
                for i in (1..order.len()).rev() {
                    let j = (rng.next() % (i as u64 + 1)) as usize;
                    order.swap(i, j);
                }
                out.push('{');
                for (n, i) in order.into_iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    sep(rng, ind, out);
                    let (k, v) = &entries[i];
                    out.push_str(&if rng.chance(2) { quote(k) } else { k.clone() });
                    out.push(':');
                    out.push_str(&" ".repeat(1 + (rng.next() % 2) as usize));
                    flow(v, ind + 2, rng, out);
                }
                sep(rng, ind, out);
                out.push('}');
            }
            Y::L(items) => {
                out.push('[');
                for (n, v) in items.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    sep(rng, ind, out);
                    flow(v, ind + 2, rng, out);
                }
                sep(rng, ind, out);
                out.push(']');
            }
        }
    }
    let mut rng = Rng(seed | 1);
    let mut out = String::from("# written by the flow writer\n\n");
    flow(doc, 0, &mut rng, &mut out);
    out.push_str("\n# end\n");
    out
}

// ---------------------------------------------------------------------------------------
// Policies, as the test understands them.

const ROLES: &[&str] = &["admin", "reader", "writer"];
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];
const GLOBS: &[&str] = &["/", "/admin/**", "/api/*/items", "/api/**", "/files/*.txt", "/**", "/health"];
const NETS: &[&str] = &[
    "0.0.0.0/0",
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.1.2.0/24",
    "192.168.0.0/16",
    "192.168.1.7",
    "::/0",
    "2001:db8::/32",
];
const PORT_RANGES: &[(u16, u16)] = &[(80, 80), (443, 443), (8000, 8099), (8080, 8080), (1, 1024)];
/// Egress destinations: IPv4 only (the host enforces no IPv6 egress).
const NETS_V4: &[&str] = &["0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "192.168.0.0/16", "192.168.1.7"];
const BODY_LIMITS: &[u64] = &[1024, 65_536, 1_048_576, 4_194_304, 16_777_216];
const HEADER_LIMITS: &[u64] = &[1024, 8192, 16_384, 65_536];
const TIMEOUTS: &[u64] = &[1, 5, 10, 30, 120];
const DEFAULT_MAX_BODY: u64 = 1_048_576;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

impl Effect {
    fn word(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        }
    }
}

#[derive(Clone, Debug)]
struct AuthzRule {
    roles: Option<Vec<&'static str>>,
    methods: Option<Vec<&'static str>>,
    paths: Option<Vec<&'static str>>,
    effect: Effect,
}

#[derive(Clone, Debug)]
struct Authz {
    default: Option<Effect>,
    rules: Vec<AuthzRule>,
}

#[derive(Clone, Debug)]
struct Ingress {
    from: Option<Vec<&'static str>>,
    ports: Option<Vec<(u16, u16)>>,
    udp: Option<bool>,
    action: Effect,
}

#[derive(Clone, Debug)]
struct Egress {
    to: &'static str,
    ports: Option<Vec<(u16, u16)>>,
    udp: Option<bool>,
}

#[derive(Clone, Debug)]
struct Http {
    methods: Option<Vec<&'static str>>,
    deny_paths: Option<Vec<&'static str>>,
    max_body: Option<u64>,
    max_header: Option<u64>,
    header_timeout: Option<u64>,
}

#[derive(Clone, Debug)]
struct Rate {
    rps: u64,
    burst: Option<u64>,
    global: Option<bool>,
}

#[derive(Clone, Debug)]
struct Firewall {
    default: Option<Effect>,
    ingress: Option<Vec<Ingress>>,
    egress: Option<Vec<Egress>>,
    http: Option<Http>,
    rate: Option<Rate>,
}

#[derive(Clone, Debug)]
enum Kind {
    Authorization(Authz),
    Firewall(Firewall),
    Hardening {
        level: Option<&'static str>,
        read_only_root: Option<bool>,
        seccomp: Option<bool>,
        lifetime_hours: Option<u64>,
    },
    Audit {
        events: Option<Vec<&'static str>>,
    },
    Isolation {
        min_trust: Option<&'static str>,
        tenants: Option<Vec<&'static str>>,
        dedicated: Option<bool>,
    },
    Authentication {
        principals: Vec<(&'static str, Vec<&'static str>)>,
    },
    /// Reads the input `level` (which is `high`): holds when it asks for `high`.
    Adaptation {
        holds: bool,
        quarantine: bool,
    },
}

#[derive(Clone, Debug)]
struct Policy {
    /// `None`: no `targets` key, every unikernel.
    targets: Option<Vec<&'static str>>,
    kind: Kind,
}

fn opt_list<T: Clone + std::fmt::Debug>(items: &'static [T], max: usize) -> impl Strategy<Value = Option<Vec<T>>> {
    prop::option::of(prop::collection::vec(select(items), 1..=max))
}

fn effect() -> impl Strategy<Value = Effect> {
    prop_oneof![Just(Effect::Allow), Just(Effect::Deny)]
}

fn authz() -> impl Strategy<Value = Authz> {
    let rule = (opt_list(ROLES, 2), opt_list(METHODS, 3), opt_list(GLOBS, 2), effect())
        .prop_map(|(roles, methods, paths, effect)| AuthzRule { roles, methods, paths, effect });
    (prop::option::of(effect()), prop::collection::vec(rule, 0..5))
        .prop_map(|(default, rules)| Authz { default, rules })
}

fn firewall() -> impl Strategy<Value = Firewall> {
    let ingress = (opt_list(NETS, 3), opt_list(PORT_RANGES, 2), prop::option::of(any::<bool>()), effect())
        .prop_map(|(from, ports, udp, action)| Ingress { from, ports, udp, action });
    let http = (
        opt_list(METHODS, 4),
        opt_list(GLOBS, 2),
        prop::option::of(select(BODY_LIMITS)),
        prop::option::of(select(HEADER_LIMITS)),
        prop::option::of(select(TIMEOUTS)),
    )
        .prop_map(|(methods, deny_paths, max_body, max_header, header_timeout)| Http {
            methods,
            deny_paths,
            max_body,
            max_header,
            header_timeout,
        });
    let rate = (1..1000u64, prop::option::of(1..2000u64), prop::option::of(any::<bool>()))
        .prop_map(|(rps, burst, global)| Rate { rps, burst, global });
    (
        prop::option::of(effect()),
        prop::option::of(prop::collection::vec(ingress, 0..4)),
        prop::option::of(egress_rules()),
        prop::option::of(http),
        prop::option::of(rate),
    )
        .prop_map(|(default, ingress, egress, http, rate)| Firewall { default, ingress, egress, http, rate })
}

/// A Firewall `egress` list, possibly empty (which allows nothing).
fn egress_rules() -> impl Strategy<Value = Vec<Egress>> {
    let rule = (select(NETS_V4), opt_list(PORT_RANGES, 2), prop::option::of(any::<bool>()))
        .prop_map(|(to, ports, udp)| Egress { to, ports, udp });
    prop::collection::vec(rule, 0..4)
}

const UNIKERNELS: &[&str] = &["api", "web", "db"];

fn targets() -> impl Strategy<Value = Option<Vec<&'static str>>> {
    prop::option::of(subsequence(UNIKERNELS, 1..=3))
}

/// Any policy of the types whose merging the digest properties exercise. Isolation tenant
/// lists always share `t0` and authentication credentials depend only on the principal's
/// name, so that random policies never conflict.
fn any_policy() -> impl Strategy<Value = Policy> {
    let kind = prop_oneof![
        authz().prop_map(Kind::Authorization),
        firewall().prop_map(Kind::Firewall),
        (
            prop::option::of(select(&["baseline", "strict"][..])),
            prop::option::of(any::<bool>()),
            prop::option::of(any::<bool>()),
            prop::option::of(1..200u64)
        )
            .prop_map(|(level, read_only_root, seccomp, lifetime_hours)| Kind::Hardening {
                level,
                read_only_root,
                seccomp,
                lifetime_hours
            }),
        opt_list(&["authn_failure", "authz_deny", "firewall_drop", "request"][..], 3)
            .prop_map(|events| Kind::Audit { events }),
        (
            prop::option::of(select(&["untrusted", "shared", "trusted", "dedicated"][..])),
            prop::option::of(subsequence(&["t1", "t2", "t3"][..], 0..=3)),
            prop::option::of(any::<bool>())
        )
            .prop_map(|(min_trust, tenants, dedicated)| Kind::Isolation {
                min_trust,
                tenants: tenants.map(|mut t| {
                    t.insert(0, "t0");
                    t
                }),
                dedicated
            }),
        prop::collection::vec((select(&["alice", "bob", "carol"][..]), subsequence(ROLES, 0..=2)), 1..3)
            .prop_map(|principals| Kind::Authentication { principals }),
        (any::<bool>(), any::<bool>()).prop_map(|(holds, quarantine)| Kind::Adaptation { holds, quarantine }),
    ];
    (targets(), kind).prop_map(|(targets, kind)| Policy { targets, kind })
}

fn opt_strs(key: &'static str, v: &Option<Vec<&'static str>>, out: &mut Vec<(&'static str, Y)>) {
    if let Some(v) = v {
        out.push((key, strs(v)));
    }
}

fn ports_y(ports: &[(u16, u16)]) -> Y {
    Y::L(ports.iter().map(|&(a, b)| if a == b { Y::P(a) } else { s(&format!("{a}-{b}")) }).collect())
}

/// The optional `ports` and `protocol` of an ingress or egress rule.
fn ports_and_protocol(ports: Option<&[(u16, u16)]>, udp: Option<bool>, e: &mut Vec<(&'static str, Y)>) {
    if let Some(ports) = ports {
        e.push(("ports", ports_y(ports)));
    }
    if let Some(udp) = udp {
        e.push(("protocol", s(if udp { "udp" } else { "tcp" })));
    }
}

fn firewall_y(f: &Firewall) -> Y {
    let mut props = Vec::new();
    if let Some(d) = f.default {
        props.push(("default", s(d.word())));
    }
    if let Some(rules) = &f.ingress {
        let rules = rules
            .iter()
            .map(|r| {
                let mut e = vec![("action", s(r.action.word()))];
                opt_strs("from", &r.from, &mut e);
                ports_and_protocol(r.ports.as_deref(), r.udp, &mut e);
                m(e)
            })
            .collect();
        props.push(("ingress", Y::L(rules)));
    }
    if let Some(rules) = &f.egress {
        let rules = rules
            .iter()
            .map(|r| {
                let mut e = vec![("to", s(r.to))];
                ports_and_protocol(r.ports.as_deref(), r.udp, &mut e);
                m(e)
            })
            .collect();
        props.push(("egress", Y::L(rules)));
    }
    if let Some(h) = &f.http {
        let mut e = Vec::new();
        opt_strs("methods", &h.methods, &mut e);
        opt_strs("deny_paths", &h.deny_paths, &mut e);
        if let Some(n) = h.max_body {
            e.push(("max_body_bytes", Y::I(n)));
        }
        if let Some(n) = h.max_header {
            e.push(("max_header_bytes", Y::I(n)));
        }
        if let Some(n) = h.header_timeout {
            e.push(("header_timeout", s(&format!("{n}s"))));
        }
        props.push(("http", m(e)));
    }
    if let Some(r) = &f.rate {
        let mut e = vec![("requests_per_second", Y::I(r.rps))];
        if let Some(b) = r.burst {
            e.push(("burst", Y::I(b)));
        }
        if let Some(g) = r.global {
            e.push(("per", s(if g { "global" } else { "source" })));
        }
        props.push(("rate_limit", m(e)));
    }
    m(props)
}

fn authz_y(a: &Authz) -> Y {
    let mut props = Vec::new();
    if let Some(d) = a.default {
        props.push(("default", s(d.word())));
    }
    let rules = a
        .rules
        .iter()
        .map(|r| {
            let mut e = vec![("effect", s(r.effect.word()))];
            opt_strs("roles", &r.roles, &mut e);
            opt_strs("methods", &r.methods, &mut e);
            opt_strs("paths", &r.paths, &mut e);
            m(e)
        })
        .collect();
    props.push(("rules", Y::L(rules)));
    m(props)
}

fn token_for(name: &str) -> String {
    let seed: u64 = name.bytes().map(u64::from).sum();
    format!("{seed:064x}")
}

fn policy_y(p: &Policy) -> Y {
    let (type_name, props) = match &p.kind {
        Kind::Authorization(a) => ("Authorization", authz_y(a)),
        Kind::Firewall(f) => ("Firewall", firewall_y(f)),
        Kind::Hardening { level, read_only_root, seccomp, lifetime_hours } => {
            let mut e = Vec::new();
            if let Some(l) = level {
                e.push(("level", s(l)));
            }
            if let Some(b) = read_only_root {
                e.push(("read_only_root", Y::B(*b)));
            }
            if let Some(b) = seccomp {
                e.push(("seccomp", Y::B(*b)));
            }
            if let Some(h) = lifetime_hours {
                e.push(("max_lifetime", s(&format!("{h}h"))));
            }
            ("Hardening", m(e))
        }
        Kind::Audit { events } => {
            let mut e = Vec::new();
            opt_strs("events", events, &mut e);
            ("Audit", m(e))
        }
        Kind::Isolation { min_trust, tenants, dedicated } => {
            let mut e = Vec::new();
            if let Some(t) = min_trust {
                e.push(("min_trust", s(t)));
            }
            opt_strs("tenants", tenants, &mut e);
            if let Some(d) = dedicated {
                e.push(("dedicated_host", Y::B(*d)));
            }
            ("Isolation", m(e))
        }
        Kind::Authentication { principals } => {
            let mut seen = std::collections::BTreeSet::new();
            let list = principals
                .iter()
                .filter(|(n, _)| seen.insert(*n))
                .map(|(n, roles)| m(vec![("name", s(n)), ("token_sha256", s(&token_for(n))), ("roles", strs(roles))]))
                .collect();
            ("Authentication", m(vec![("scheme", s("bearer")), ("realm", s("api")), ("principals", Y::L(list))]))
        }
        Kind::Adaptation { holds, quarantine } => {
            let when = m(vec![("input", s("level")), ("equals", s(if *holds { "high" } else { "low" }))]);
            ("Adaptation", m(vec![("when", when), ("then", m(vec![("quarantine", Y::B(*quarantine))]))]))
        }
    };
    let mut e = vec![("type", s(&format!("sdsec.policies.{type_name}"))), ("properties", props)];
    if let Some(t) = &p.targets {
        e.push(("targets", strs(t)));
    }
    m(e)
}

/// A document with the three unikernels and the policies, named `p0`, `p1`, ... by `names`.
fn document(policies: &[(String, Policy)]) -> Y {
    let nodes = UNIKERNELS
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let props = m(vec![("port", Y::P(8080 + i as u16)), ("memory_mb", Y::I(64 << i))]);
            (n.to_string(), m(vec![("type", s("sdsec.nodes.Unikernel")), ("properties", props)]))
        })
        .collect();
    let list = policies.iter().map(|(name, p)| Y::M(vec![(name.clone(), policy_y(p))])).collect();
    m(vec![
        ("tosca_definitions_version", s("tosca_simple_yaml_1_3")),
        (
            "topology_template",
            m(vec![
                ("inputs", m(vec![("level", m(vec![("type", s("string")), ("default", s("high"))]))])),
                ("node_templates", Y::M(nodes)),
                ("policies", Y::L(list)),
            ]),
        ),
    ])
}

fn named(policies: Vec<Policy>) -> Vec<(String, Policy)> {
    policies.into_iter().enumerate().map(|(i, p)| (format!("p{i}"), p)).collect()
}

fn compile_text(text: &str) -> Compilation {
    sectosca::compile(&Source::new("prop.yaml", text), &BTreeMap::new(), &Options::default())
}

/// Compiles a document that merges several policies. A conflict the compiler refuses to
/// merge (E0701, e.g. HTTP methods no policy allows together) gives no plan at all, which
/// loosens nothing; any other error fails the test.
fn compile_merged(text: &str) -> Result<Option<Compilation>, TestCaseError> {
    let c = compile_text(text);
    if c.has_errors() && c.errors().all(|d| d.code == sectosca::Code::PolicyConflict) {
        return Ok(None);
    }
    compile_ok(text).map(Some)
}

/// Compiles and insists on success, so that equal digests are not two equal failures.
fn compile_ok(text: &str) -> Result<Compilation, TestCaseError> {
    let c = compile_text(text);
    let errors: Vec<String> = c.errors().map(ToString::to_string).collect();
    prop_assert!(errors.is_empty(), "the document does not compile:\n{}\n{text}", errors.join("\n"));
    Ok(c)
}

// ---------------------------------------------------------------------------------------
// Requests and the two reference evaluators.

#[derive(Clone, Debug)]
struct Request {
    method: &'static str,
    path: &'static str,
    roles: Vec<&'static str>,
    source: IpAddr,
    port: u16,
    udp: bool,
    body: u64,
}

fn request() -> impl Strategy<Value = Request> {
    let paths = &["/", "/admin", "/admin/users", "/api/v1/items", "/api/v1/x", "/files/a.txt", "/health", "/other"][..];
    let sources = &["10.1.2.3", "10.9.9.9", "192.168.1.7", "192.168.2.1", "8.8.8.8", "2001:db8::1", "::1"][..];
    (
        select(METHODS),
        select(paths),
        subsequence(ROLES, 0..=2),
        select(sources),
        select(&[80u16, 443, 8080, 8090, 22, 5432][..]),
        any::<bool>(),
        select(&[0u64, 1000, 70_000, 2_000_000, 20_000_000][..]),
    )
        .prop_map(|(method, path, roles, source, port, udp, body)| Request {
            method,
            path,
            roles,
            source: source.parse().unwrap(),
            port,
            udp,
            body,
        })
}

/// Whether a network in CIDR notation (or a bare address) contains an address.
fn net_contains(net: &str, ip: IpAddr) -> bool {
    let (addr, len) = match net.split_once('/') {
        Some((a, l)) => (a.parse::<IpAddr>().unwrap(), Some(l.parse::<u32>().unwrap())),
        None => (net.parse::<IpAddr>().unwrap(), None),
    };
    match (addr, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let len = len.unwrap_or(32);
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let len = len.unwrap_or(128);
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

fn glob_matches(glob: &str, path: &str) -> bool {
    sectosca::values::PathGlob(glob.to_owned()).matches(path)
}

/// Which mechanisms of a plan to judge a request by.
#[derive(Clone, Copy, Debug)]
struct Mechanisms {
    firewall: bool,
    authorization: bool,
}

const ALL: Mechanisms = Mechanisms { firewall: true, authorization: true };

/// The mechanisms a policy of this kind governs.
fn governed_by(kind: &Kind) -> Mechanisms {
    Mechanisms { firewall: matches!(kind, Kind::Firewall(_)), authorization: matches!(kind, Kind::Authorization(_)) }
}

fn plan_allows(plan: &EnforcementPlan, r: &Request) -> bool {
    plan_allows_by(plan, r, ALL)
}

/// The plan's semantics: every ingress rule set and every authorization rule set must allow,
/// each deciding by its first matching rule, and the HTTP rules apply.
fn plan_allows_by(plan: &EnforcementPlan, r: &Request, by: Mechanisms) -> bool {
    use sectosca::model::Effect as E;
    let rt = &plan.runtime;
    if rt.quarantine {
        return false;
    }
    if by.firewall && !firewall_allows(plan, r) {
        return false;
    }
    if !by.authorization {
        return true;
    }
    for set in &rt.authorization {
        let hit = set.rules.iter().find(|rule| {
            (rule.roles.is_empty() || rule.roles.iter().any(|x| r.roles.contains(&x.as_str())))
                && (rule.methods.is_empty() || rule.methods.iter().any(|m| m.as_str() == r.method))
                && (rule.paths.is_empty() || rule.paths.iter().any(|g| g.matches(r.path)))
        });
        if hit.map_or(set.default, |rule| rule.effect) == E::Deny {
            return false;
        }
    }
    true
}

fn firewall_allows(plan: &EnforcementPlan, r: &Request) -> bool {
    use sectosca::model::Effect as E;
    use sectosca::model::policies::Protocol;
    let rt = &plan.runtime;
    for set in &rt.firewall.ingress {
        let hit = set.rules.iter().find(|rule| {
            (rule.from.is_empty() || rule.from.iter().any(|c| net_contains(&c.0.to_string(), r.source)))
                && (rule.ports.is_empty() || rule.ports.iter().any(|p| p.contains(r.port)))
                && ((rule.protocol == Protocol::Udp) == r.udp)
        });
        if hit.map_or(set.default, |rule| rule.action) == E::Deny {
            return false;
        }
    }
    let http = &rt.firewall.http;
    if http.allowed_methods.as_ref().is_some_and(|ms| !ms.iter().any(|m| m.as_str() == r.method))
        || http.deny_paths.iter().any(|g| g.matches(r.path))
        || r.body > http.max_body_bytes
    {
        return false;
    }
    true
}

/// The policy's own semantics, read from the profile: a list key that is written names what
/// it lists (an empty list names nothing); an absent key means any. Every limit a policy
/// has, given or by default, is its limit.
fn policy_allows(p: &Kind, r: &Request) -> bool {
    let listed =
        |list: &Option<Vec<&str>>, pred: &dyn Fn(&str) -> bool| list.as_ref().is_none_or(|l| l.iter().any(|x| pred(x)));
    match p {
        Kind::Authorization(a) => {
            let hit = a.rules.iter().find(|rule| {
                listed(&rule.roles, &|x| r.roles.contains(&x))
                    && listed(&rule.methods, &|x| x == r.method)
                    && listed(&rule.paths, &|g| glob_matches(g, r.path))
            });
            hit.map_or(a.default.unwrap_or(Effect::Deny), |rule| rule.effect) == Effect::Allow
        }
        Kind::Firewall(f) => {
            let rules = f.ingress.clone().unwrap_or_default();
            let default = f.default.unwrap_or(if rules.is_empty() { Effect::Allow } else { Effect::Deny });
            let hit = rules.iter().find(|rule| {
                listed(&rule.from, &|n| net_contains(n, r.source))
                    && rule.ports.as_ref().is_none_or(|ps| ps.iter().any(|&(a, b)| (a..=b).contains(&r.port)))
                    && rule.udp.unwrap_or(false) == r.udp
            });
            if hit.map_or(default, |rule| rule.action) == Effect::Deny {
                return false;
            }
            let http = f.http.as_ref();
            let max_body = http.and_then(|h| h.max_body).unwrap_or(DEFAULT_MAX_BODY);
            listed(&http.and_then(|h| h.methods.clone()), &|x| x == r.method)
                && !http
                    .and_then(|h| h.deny_paths.as_ref())
                    .is_some_and(|ps| ps.iter().any(|g| glob_matches(g, r.path)))
                && r.body <= max_body
        }
        _ => true,
    }
}

/// A connection the guest opens.
#[derive(Clone, Debug)]
struct Connection {
    to: IpAddr,
    port: u16,
    udp: bool,
}

fn connection() -> impl Strategy<Value = Connection> {
    let addresses = &["10.1.2.3", "10.1.9.9", "10.200.0.1", "192.168.1.7", "192.168.2.1", "8.8.8.8"][..];
    (select(addresses), select(&[1u16, 80, 443, 1024, 1025, 8000, 8080, 8099, 8100, 65535][..]), any::<bool>())
        .prop_map(|(to, port, udp)| Connection { to: to.parse().unwrap(), port, udp })
}

/// The plan's egress semantics: some rule matches (an empty port list is any port).
fn plan_egress_allows(plan: &EnforcementPlan, c: &Connection) -> bool {
    use sectosca::model::policies::Protocol;
    plan.runtime.firewall.egress.iter().any(|rule| {
        net_contains(&rule.to.0.to_string(), c.to)
            && (rule.ports.is_empty() || rule.ports.iter().any(|p| p.contains(c.port)))
            && ((rule.protocol == Protocol::Udp) == c.udp)
    })
}

/// One policy's egress, by the profile: `None` when it declares none (it has no say).
fn policy_egress_allows(p: &Kind, c: &Connection) -> Option<bool> {
    let Kind::Firewall(f) = p else { return None };
    let rules = f.egress.as_ref()?;
    Some(rules.iter().any(|rule| {
        net_contains(rule.to, c.to)
            && rule.ports.as_ref().is_none_or(|ps| ps.iter().any(|&(a, b)| (a..=b).contains(&c.port)))
            && rule.udp.unwrap_or(false) == c.udp
    }))
}

fn plan_of(c: &Compilation, node: &str) -> EnforcementPlan {
    c.plans.get(node).cloned().unwrap_or_else(|| panic!("no plan for `{node}`"))
}

/// The limits of `merged` are no looser than those of `alone`.
fn assert_no_looser(alone: &EnforcementPlan, merged: &EnforcementPlan) -> Result<(), TestCaseError> {
    let (a, m) = (&alone.runtime.firewall, &merged.runtime.firewall);
    prop_assert!(
        m.http.max_body_bytes <= a.http.max_body_bytes,
        "max_body_bytes {} > {}",
        m.http.max_body_bytes,
        a.http.max_body_bytes
    );
    prop_assert!(
        m.http.max_header_bytes <= a.http.max_header_bytes,
        "max_header_bytes {} > {}",
        m.http.max_header_bytes,
        a.http.max_header_bytes
    );
    prop_assert!(m.http.header_timeout_seconds <= a.http.header_timeout_seconds);
    for limit in &a.rate_limits {
        let same = m.rate_limits.iter().find(|l| l.per == limit.per);
        prop_assert!(
            same.is_some_and(|l| l.requests_per_second <= limit.requests_per_second && l.burst <= limit.burst),
            "rate limit {limit:?} loosened to {same:?}"
        );
    }
    if let Some(methods) = &a.http.allowed_methods {
        let merged_methods = m.http.allowed_methods.as_ref();
        prop_assert!(
            merged_methods.is_some_and(|mm| mm.iter().all(|x| methods.contains(x))),
            "allowed methods loosened"
        );
    }
    for path in &a.http.deny_paths {
        prop_assert!(m.http.deny_paths.contains(path), "deny path {path:?} dropped");
    }
    Ok(())
}

fn on_api(kind: Kind) -> Policy {
    Policy { targets: Some(vec!["api"]), kind }
}

fn authz_or_firewall() -> impl Strategy<Value = Kind> {
    prop_oneof![authz().prop_map(Kind::Authorization), firewall().prop_map(Kind::Firewall)]
}

// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    /// (a) Two writers, one meaning: the same digest.
    #[test]
    fn digest_ignores_key_order_style_and_comments(policies in prop::collection::vec(any_policy(), 1..6), seed in any::<u64>()) {
        let doc = document(&named(policies));
        let block = write_block(&doc);
        let flow = write_flow(&doc, seed);
        match (compile_merged(&block)?, compile_merged(&flow)?) {
            (Some(a), Some(b)) => {
                prop_assert_eq!(a.canonical_json(), b.canonical_json(), "block:\n{}\nflow:\n{}", block, flow);
                prop_assert_eq!(a.digest(), b.digest());
            }
            (None, None) => {}
            _ => prop_assert!(false, "only one writing conflicts:\nblock:\n{}\nflow:\n{}", block, flow),
        }
    }

    /// (b) The order policies are written in does not matter.
    #[test]
    fn merging_is_commutative(policies in prop::collection::vec(any_policy(), 1..7), seed in any::<u64>()) {
        let policies = named(policies);
        let mut shuffled = policies.clone();
        let mut rng = Rng(seed | 1);
        for i in (1..shuffled.len()).rev() {
            let j = (rng.next() % (i as u64 + 1)) as usize;
            shuffled.swap(i, j);
        }
        // Either both orders merge to the same plans, or both are refused as a conflict.
        let a = compile_merged(&write_block(&document(&policies)))?;
        let b = compile_merged(&write_block(&document(&shuffled)))?;
        match (a, b) {
            (Some(a), Some(b)) => prop_assert_eq!(a.digest(), b.digest(), "{}\n---\n{}", a.canonical_json(), b.canonical_json()),
            (None, None) => {}
            (a, b) => prop_assert!(false, "one order merges and the other conflicts: {:?} vs {:?}", a.map(|c| c.digest()), b.map(|c| c.digest())),
        }
    }

    /// (c) What A alone denies, A merged with B denies; the merged limits are no higher.
    #[test]
    fn merging_never_loosens(a in authz_or_firewall(), b in authz_or_firewall(), requests in prop::collection::vec(request(), 16)) {
        let both = named(vec![on_api(a.clone()), on_api(b.clone())]);
        let Some(merged) = compile_merged(&write_block(&document(&both)))? else { return Ok(()) };
        let merged = plan_of(&merged, "api");
        for (name, kind) in [("A", a), ("B", b)] {
            // A policy alone is judged by the mechanism it governs: the firewall defaults of a
            // unikernel without any firewall policy are no authorization policy's limits.
            let by = governed_by(&kind);
            let alone = plan_of(&compile_ok(&write_block(&document(&named(vec![on_api(kind)]))))?, "api");
            for r in &requests {
                if !plan_allows_by(&alone, r, by) {
                    prop_assert!(!plan_allows(&merged, r), "{name} alone denies {r:?} but the merged plan allows it:\n{}", merged.canonical_json());
                }
            }
            if by.firewall {
                assert_no_looser(&alone, &merged)?;
            }
        }
    }

    /// (d) No request that some applicable policy denies, by its own semantics, is allowed.
    #[test]
    fn lowering_never_allows_what_a_policy_denies(kinds in prop::collection::vec(authz_or_firewall(), 1..=3), requests in prop::collection::vec(request(), 24)) {
        let policies = named(kinds.iter().cloned().map(on_api).collect());
        let Some(plan) = compile_merged(&write_block(&document(&policies)))? else { return Ok(()) };
        let plan = plan_of(&plan, "api");
        for r in &requests {
            for (i, k) in kinds.iter().enumerate() {
                if !policy_allows(k, r) {
                    prop_assert!(!plan_allows(&plan, r), "p{i} denies {r:?} but the plan allows it:\n{}", plan.canonical_json());
                }
            }
        }
    }

    /// (d) A connection out is allowed exactly when every policy that declares `egress` allows
    /// it (none: nothing is allowed); policies without `egress` have no say.
    #[test]
    fn egress_allows_exactly_what_every_declaring_policy_allows(
        firewalls in prop::collection::vec(firewall(), 1..=3),
        connections in prop::collection::vec(connection(), 24),
    ) {
        let kinds: Vec<Kind> = firewalls.into_iter().map(Kind::Firewall).collect();
        let policies = named(kinds.iter().cloned().map(on_api).collect());
        let Some(plan) = compile_merged(&write_block(&document(&policies)))? else { return Ok(()) };
        let plan = plan_of(&plan, "api");
        for c in &connections {
            let says: Vec<bool> = kinds.iter().filter_map(|k| policy_egress_allows(k, c)).collect();
            let expected = !says.is_empty() && says.iter().all(|&a| a);
            prop_assert_eq!(
                plan_egress_allows(&plan, c),
                expected,
                "{:?} with policies saying {:?}:\n{}",
                c,
                says,
                plan.canonical_json()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// (e) No panic, whatever the input; and what every compilation promises.

fn check_invariants(text: &str, c: &Compilation) -> Result<(), TestCaseError> {
    prop_assert!(!c.has_errors() || c.plans.is_empty(), "errors, yet plans");
    let mut last = None;
    for d in &c.diagnostics {
        let loc = d.location.as_ref();
        prop_assert!(loc.is_some(), "diagnostic without a location: {d}");
        let loc = loc.unwrap();
        prop_assert!(loc.line >= 1 && loc.column >= 1, "bad position: {d}");
        prop_assert!(loc.span.start <= loc.span.end && loc.span.end <= text.len(), "span outside the text: {d}");
        prop_assert!(
            text.is_char_boundary(loc.span.start) && text.is_char_boundary(loc.span.end),
            "span splits a character: {d}"
        );
        let key = (loc.line, loc.column);
        prop_assert!(last.is_none_or(|l| l <= key), "diagnostics out of order");
        last = Some(key);
        prop_assert!(!d.message.is_empty());
    }
    if !c.has_errors() {
        // Plans serialise, and the digest is a function of them.
        prop_assert!(c.canonical_json().starts_with('{'), "canonical JSON is an object");
        prop_assert_eq!(c.digest(), c.clone().digest());
    }
    Ok(())
}

fn compile_with(text: &str, inputs: &BTreeMap<String, String>) -> Compilation {
    sectosca::compile(&Source::new("fuzz.yaml", text), inputs, &Options::default())
}

/// Mutations of a valid document's tree.
#[derive(Clone, Debug)]
enum Mutation {
    Delete(Vec<usize>),
    Replace(Vec<usize>, Y),
    DuplicateKey(Vec<usize>),
    Nest(Vec<usize>, usize),
    RenameKey(Vec<usize>, &'static str),
}

fn junk() -> impl Strategy<Value = Y> {
    let leaf = prop_oneof![
        Just(s("")),
        Just(s("null")),
        Just(Y::B(true)),
        Just(Y::I(u64::MAX)),
        Just(s("-1")),
        Just(s("0")),
        Just(s("1e309")),
        Just(s("/admin/**")),
        Just(s("10.0.0.0/33")),
        Just(s("é\u{0}\u{202e}")),
        Just(s("get_input")),
        "[a-z_]{0,12}".prop_map(Y::S),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Y::L),
            prop::collection::vec((select(KEYS).prop_map(str::to_owned), inner), 0..4).prop_map(Y::M),
        ]
    })
}

const KEYS: &[&str] = &[
    "type",
    "targets",
    "properties",
    "get_input",
    "rules",
    "roles",
    "methods",
    "paths",
    "effect",
    "default",
    "ingress",
    "egress",
    "to",
    "from",
    "ports",
    "action",
    "http",
    "rate_limit",
    "requests_per_second",
    "burst",
    "per",
    "scheme",
    "principals",
    "name",
    "token_sha256",
    "password_hash",
    "public_key",
    "algorithm",
    "jwt",
    "when",
    "then",
    "input",
    "equals",
    "in",
    "quarantine",
    "min_trust",
    "tenants",
    "dedicated_host",
    "level",
    "max_lifetime",
    "events",
    "host",
    "connects_to",
    "node",
    "inputs",
    "constraints",
    "valid_values",
    "required",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    let path = prop::collection::vec(any::<usize>(), 0..7);
    prop_oneof![
        path.clone().prop_map(Mutation::Delete),
        (path.clone(), junk()).prop_map(|(p, y)| Mutation::Replace(p, y)),
        path.clone().prop_map(Mutation::DuplicateKey),
        (path.clone(), 1..80usize).prop_map(|(p, n)| Mutation::Nest(p, n)),
        (path, select(KEYS)).prop_map(|(p, k)| Mutation::RenameKey(p, k)),
    ]
}

/// Applies a mutation at the node that `path` leads to (indices taken modulo the size).
fn mutate(y: &mut Y, path: &[usize], mutation: &Mutation) {
    let children = match y {
        Y::M(e) => e.len(),
        Y::L(e) => e.len(),
        _ => 0,
    };
    if let (Some((&first, rest)), true) = (path.split_first(), children > 0) {
        let i = first % children;
        let last = rest.is_empty();
        match (y, mutation) {
            (Y::M(e), Mutation::Delete(_)) if last => {
                e.remove(i);
            }
            (Y::L(e), Mutation::Delete(_)) if last => {
                e.remove(i);
            }
            (Y::M(e), Mutation::DuplicateKey(_)) if last => {
                let dup = e[i].clone();
                e.push(dup);
            }
            (Y::L(e), Mutation::DuplicateKey(_)) if last => {
                let dup = e[i].clone();
                e.insert(i, dup);
            }
            (Y::M(e), Mutation::RenameKey(_, k)) if last => e[i].0 = (*k).to_owned(),
            (Y::M(e), _) => mutate(&mut e[i].1, rest, mutation),
            (Y::L(e), _) => mutate(&mut e[i], rest, mutation),
            _ => {}
        }
        return;
    }
    match mutation {
        Mutation::Replace(_, with) => *y = with.clone(),
        Mutation::Nest(_, depth) => {
            for n in 0..*depth {
                *y = if n % 2 == 0 { Y::L(vec![y.clone()]) } else { Y::M(vec![("k".into(), y.clone())]) };
            }
        }
        _ => {}
    }
}

/// A valid document with hosts, flows, inputs and an adaptation, to start mutating from.
fn rich_document(policies: &[(String, Policy)]) -> Y {
    let mut doc = document(policies);
    let Y::M(top) = &mut doc else { unreachable!() };
    let Y::M(topology) = &mut top[1].1 else { unreachable!() };
    if let Y::M(inputs) = &mut topology[0].1 {
        inputs.push((
            "threat_level".into(),
            m(vec![
                ("type", s("string")),
                ("default", s("normal")),
                ("constraints", Y::L(vec![m(vec![("valid_values", strs(&["normal", "high"]))])])),
            ]),
        ));
    }
    if let Y::M(nodes) = &mut topology[1].1 {
        nodes.push((
            "h1".into(),
            m(vec![
                ("type", s("sdsec.nodes.Hypervisor")),
                ("properties", m(vec![("site", s("paris")), ("tenant", s("t0")), ("trust", s("trusted"))])),
            ]),
        ));
        if let Some((_, Y::M(api))) = nodes.first_mut() {
            api.push((
                "requirements".into(),
                Y::L(vec![m(vec![("host", s("h1"))]), m(vec![("connects_to", s("db"))])]),
            ));
        }
    }
    if let Y::L(list) = &mut topology[2].1 {
        let adaptation = m(vec![
            ("type", s("sdsec.policies.Adaptation")),
            ("targets", strs(&["api"])),
            (
                "properties",
                m(vec![
                    ("when", m(vec![("input", s("threat_level")), ("equals", s("high"))])),
                    ("then", m(vec![("quarantine", Y::B(true))])),
                ]),
            ),
        ]);
        list.push(Y::M(vec![("adapt".into(), adaptation)]));
    }
    doc
}

fn inputs() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(
        select(&["threat_level", "level", "rps", "x"][..]).prop_map(str::to_owned),
        "[a-z0-9 ]{0,8}",
        0..3,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_arbitrary_strings(text in any::<String>()) {
        let c = compile_with(&text, &BTreeMap::new());
        check_invariants(&text, &c)?;
    }

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let c = compile_with(&text, &BTreeMap::new());
        check_invariants(&text, &c)?;
    }

    /// Text made of YAML's punctuation, so that the parser's corners are reached.
    #[test]
    fn never_panics_on_yaml_like_text(text in "([-:{}\\[\\],&*!|>'\"%@`#?~ \t\n]|[a-z0-9]|\u{e9}|\r\n){0,300}", inputs in inputs()) {
        let c = compile_with(&text, &inputs);
        check_invariants(&text, &c)?;
    }

    /// Valid documents with keys deleted, renamed or duplicated, values of the wrong type,
    /// and deep nesting; written in either style.
    #[test]
    fn never_panics_on_mutated_documents(
        policies in prop::collection::vec(any_policy(), 0..4),
        mutations in prop::collection::vec(mutation(), 1..5),
        flow in any::<bool>(),
        seed in any::<u64>(),
        inputs in inputs(),
    ) {
        let mut doc = rich_document(&named(policies));
        for mutation in &mutations {
            let path = match mutation {
                Mutation::Delete(p) | Mutation::Replace(p, _) | Mutation::DuplicateKey(p) | Mutation::Nest(p, _) | Mutation::RenameKey(p, _) => p.clone(),
            };
            mutate(&mut doc, &path, mutation);
        }
        let text = match (&doc, flow) {
            (Y::M(_) | Y::L(_), false) => write_block(&doc),
            _ => write_flow(&doc, seed),
        };
        let c = compile_with(&text, &inputs);
        check_invariants(&text, &c)?;
    }
}

/// The writers themselves: both must give what the golden example gives.
#[test]
fn the_two_writers_agree_on_a_fixed_document() {
    let policy = Policy {
        targets: None,
        kind: Kind::Firewall(Firewall {
            default: Some(Effect::Deny),
            ingress: Some(vec![Ingress {
                from: Some(vec!["10.0.0.0/8", "::/0"]),
                ports: Some(vec![(8000, 8099)]),
                udp: None,
                action: Effect::Allow,
            }]),
            egress: Some(vec![Egress { to: "10.1.0.0/16", ports: Some(vec![(443, 443)]), udp: Some(false) }]),
            http: Some(Http {
                methods: Some(vec!["GET"]),
                deny_paths: Some(vec!["/admin/**"]),
                max_body: Some(4096),
                max_header: None,
                header_timeout: Some(5),
            }),
            rate: Some(Rate { rps: 10, burst: None, global: Some(true) }),
        }),
    };
    let doc = document(&named(vec![policy]));
    let a = compile_text(&write_block(&doc));
    let b = compile_text(&write_flow(&doc, 42));
    assert!(!a.has_errors(), "{:?}", a.diagnostics);
    assert!(!b.has_errors(), "{:?}\n{}", b.diagnostics, write_flow(&doc, 42));
    assert_eq!(a.digest(), b.digest());
    assert_eq!(a.plans["web"].runtime.firewall.http.max_body_bytes, 4096);
}
