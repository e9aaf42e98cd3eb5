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
    match effect {
        Effect::Deny => glob.matches_ignoring_case(path),
        Effect::Allow => glob.matches(path),
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
