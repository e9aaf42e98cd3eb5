//! Authorization: roles × methods × path globs, first match wins, every rule set must allow.

use std::collections::BTreeSet;

use plan::{AuthorizationRulePlan, AuthorizationRuleSet, Effect};

fn matches(rule: &AuthorizationRulePlan, roles: Option<&BTreeSet<String>>, method: &str, path: &str) -> bool {
    // A rule with roles needs a principal holding one of them; anonymous requests hold none.
    let role_ok = rule.roles.is_empty() || roles.is_some_and(|held| rule.roles.iter().any(|r| held.contains(r)));
    role_ok
        && (rule.methods.is_empty() || rule.methods.iter().any(|m| m.as_str() == method))
        && (rule.paths.is_empty() || rule.paths.iter().any(|g| glob_matches(g, rule.effect, path)))
}

/// A rule that refuses matches paths whatever their letters' case (an application may
/// route `/ADMIN` to `/admin`); a rule that allows matches them exactly, so it never
/// grants more than it names.
pub fn glob_matches(glob: &plan::PathGlob, effect: Effect, path: &str) -> bool {
    // What `PathGlob::matches` (and `matches_ignoring_case`) decide, without the segment
    // lists and lower-cased copies they allocate: this runs for every rule of every request.
    let fold = effect == Effect::Deny;
    segments_match(after_first(&glob.0), after_first(path), fold)
}

/// The segments after the first `/`, joined by `/`; `None` when there are none.
fn after_first(text: &str) -> Option<&str> {
    text.split_once('/').map(|(_, rest)| rest)
}

/// The first of `segments` and the rest.
fn split_first(segments: &str) -> (&str, Option<&str>) {
    match segments.split_once('/') {
        Some((first, rest)) => (first, Some(rest)),
        None => (segments, None),
    }
}

fn segments_match(pattern: Option<&str>, path: Option<&str>, fold: bool) -> bool {
    let Some(pattern) = pattern else { return path.is_none() };
    let (first, rest) = split_first(pattern);
    if first == "**" {
        // Any number of segments, none included.
        let mut path = path;
        loop {
            if segments_match(rest, path, fold) {
                return true;
            }
            match path {
                Some(p) => path = split_first(p).1,
                None => return false,
            }
        }
    }
    path.is_some_and(|p| {
        let (segment, tail) = split_first(p);
        segment_matches(first, segment, fold) && segments_match(rest, tail, fold)
    })
}

/// One segment against one pattern segment, where `*` stands for any characters. ASCII
/// case folding keeps lengths and character boundaries, so it can be done byte by byte.
fn segment_matches(pattern: &str, segment: &str, fold: bool) -> bool {
    let eq = |a: &str, b: &str| if fold { a.eq_ignore_ascii_case(b) } else { a == b };
    match pattern.split_once('*') {
        None => eq(pattern, segment),
        Some((head, tail)) => {
            let Some(rest) = segment.get(head.len()..).filter(|_| eq(&segment[..head.len()], head)) else {
                return false;
            };
            (0..=rest.len()).filter(|i| rest.is_char_boundary(*i)).any(|i| segment_matches(tail, &rest[i..], fold))
        }
    }
}

/// `Ok` when every set allows the request, otherwise the name of the policy that refused it.
/// `path` must be normalised ([`crate::path::NormalPath::matching`]).
pub fn authorize<'a>(
    sets: &'a [AuthorizationRuleSet],
    roles: Option<&BTreeSet<String>>,
    method: &str,
    path: &str,
) -> Result<(), &'a str> {
    for set in sets {
        let effect = set.rules.iter().find(|r| matches(r, roles, method, path)).map_or(set.default, |r| r.effect);
        if effect != Effect::Allow {
            return Err(&set.policy);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use plan::{Method, PathGlob};

    fn rule(roles: &[&str], methods: &[Method], paths: &[&str], effect: Effect) -> AuthorizationRulePlan {
        AuthorizationRulePlan {
            roles: roles.iter().map(|s| (*s).to_owned()).collect(),
            methods: methods.to_vec(),
            paths: paths.iter().map(|p| PathGlob((*p).to_owned())).collect(),
            effect,
        }
    }

    #[test]
    fn first_match_then_default() {
        let sets = vec![AuthorizationRuleSet {
            policy: "rbac".into(),
            default: Effect::Deny,
            rules: vec![
                rule(&[], &[Method::Get], &["/public/**"], Effect::Allow),
                rule(&["admin"], &[], &["/admin/**"], Effect::Allow),
                rule(&["reader"], &[Method::Get], &["/**"], Effect::Allow),
            ],
        }];
        let admin: BTreeSet<String> = ["admin".to_owned()].into();
        let reader: BTreeSet<String> = ["reader".to_owned()].into();
        assert_eq!(authorize(&sets, None, "GET", "/public/x"), Ok(()));
        assert_eq!(authorize(&sets, None, "POST", "/public/x"), Err("rbac"));
        assert_eq!(authorize(&sets, Some(&admin), "DELETE", "/admin/users"), Ok(()));
        assert_eq!(authorize(&sets, Some(&reader), "DELETE", "/admin/users"), Err("rbac"));
        assert_eq!(authorize(&sets, Some(&reader), "GET", "/admin/users"), Ok(()));
        assert_eq!(authorize(&[], None, "GET", "/x"), Ok(()));
    }

    /// The same decisions as the plan crate's matcher, on globs and paths of every shape.
    #[test]
    fn glob_matching_agrees_with_the_plan_crate() {
        let globs = [
            "/",
            "/**",
            "/admin/**",
            "/api/*/items",
            "/files/*.txt",
            "/a*b*c",
            "/*",
            "/**/x",
            "/a/**/b/**",
            "/Admin/**",
            "/caf\u{e9}/*",
            "/*\u{e9}*",
            "admin",
            "",
            "/a//b",
            "/**/**",
            "/x*",
        ];
        let paths = [
            "/",
            "/admin",
            "/ADMIN/users",
            "/administrator",
            "/api/v1/items",
            "/api/v1/x/items",
            "/files/a.txt",
            "/files/a.txt/x",
            "/abc",
            "/aXbYc",
            "/ab",
            "/x",
            "/q/x",
            "/a/b",
            "/a/q/b/r",
            "/caf\u{c9}/x",
            "/caf\u{e9}/x",
            "/\u{e9}",
            "",
            "/a//b",
            "/X",
            "/xy",
        ];
        for g in globs {
            let glob = PathGlob(g.to_owned());
            for p in paths {
                assert_eq!(glob_matches(&glob, Effect::Allow, p), glob.matches(p), "{g} {p}");
                assert_eq!(glob_matches(&glob, Effect::Deny, p), glob.matches_ignoring_case(p), "{g} {p} (case)");
            }
        }
    }

    #[test]
    fn deny_rules_ignore_case_and_allow_rules_do_not() {
        let sets = vec![AuthorizationRuleSet {
            policy: "rbac".into(),
            default: Effect::Deny,
            rules: vec![
                rule(&[], &[], &["/admin/**"], Effect::Deny),
                rule(&[], &[], &["/public/**", "/**/Admin/x"], Effect::Allow),
                rule(&[], &[], &["/**"], Effect::Allow),
            ],
        }];
        for path in ["/admin", "/ADMIN/users", "/Admin"] {
            assert_eq!(authorize(&sets, None, "GET", path), Err("rbac"), "{path}");
        }
        let exact = vec![AuthorizationRuleSet {
            policy: "exact".into(),
            default: Effect::Deny,
            rules: vec![rule(&[], &[], &["/public/**"], Effect::Allow)],
        }];
        assert_eq!(authorize(&exact, None, "GET", "/public/x"), Ok(()));
        assert_eq!(authorize(&exact, None, "GET", "/PUBLIC/x"), Err("exact"), "allow names exactly");
    }
}
