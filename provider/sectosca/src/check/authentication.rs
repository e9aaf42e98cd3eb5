//! An authentication policy's principals against its scheme: each carries the credential
//! the scheme uses, and a JWT key fits its algorithm.

use std::collections::BTreeMap;

use super::PolicyTemplate;
use crate::diagnostic::{Code, Sink};
use crate::model::policies::{AuthenticationProperties, Scheme};
use crate::path::YamlPath;
use crate::values::{JwtAlgorithm, KeyKind};

/// A key type in words. Every one of them takes the article "an".
fn key_kind_name(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::EcP256 => "EC P-256",
        KeyKind::EcP384 => "EC P-384",
        KeyKind::Rsa => "RSA",
        KeyKind::Ed25519 => "Ed25519",
    }
}

/// Each principal must carry the credential its scheme uses, and only that one.
pub(super) fn check_authentication(
    a: &AuthenticationProperties,
    path: &YamlPath,
    template: &PolicyTemplate,
    sink: &mut Sink<'_>,
) {
    let scheme = a.scheme.value;
    let mut names = BTreeMap::new();
    for (i, p) in a.principals.iter().flatten().enumerate() {
        let ppath = path.key("principals").index(i);
        if let Some(first) = names.insert(p.name.value.clone(), i) {
            sink.report(
                Code::DuplicateName,
                p.name.span,
                &p.name.path,
                format!("principal `{}` is already defined at principals[{first}]", p.name.value),
            );
        }
        let (needed, present): (&str, bool) = match scheme {
            Scheme::Basic => ("password_hash", p.password_hash.is_some()),
            Scheme::Bearer => ("token_sha256", p.token_sha256.is_some()),
            Scheme::Jwt => ("public_key", p.public_key.is_some()),
        };
        if !present {
            sink.report(
                Code::InconsistentPolicy,
                p.name.span,
                &ppath,
                format!("principal `{}` has no `{needed}`, which scheme {scheme} needs", p.name.value),
            );
        }
        let stray: Vec<(&str, crate::source::Span)> = [
            ("password_hash", p.password_hash.as_ref().map(|v| v.span).filter(|_| scheme != Scheme::Basic)),
            ("token_sha256", p.token_sha256.as_ref().map(|v| v.span).filter(|_| scheme != Scheme::Bearer)),
            ("public_key", p.public_key.as_ref().map(|v| v.span).filter(|_| scheme != Scheme::Jwt)),
            ("algorithm", p.algorithm.as_ref().map(|v| v.span).filter(|_| scheme != Scheme::Jwt)),
        ]
        .into_iter()
        .filter_map(|(k, span)| span.map(|s| (k, s)))
        .collect();
        for (key, span) in stray {
            sink.report(
                Code::InconsistentPolicy,
                span,
                &ppath.key(key),
                format!("scheme {scheme} does not use `{key}`"),
            )
            .hint = Some(format!("remove `{key}` from principal `{}`", p.name.value));
        }
        if scheme == Scheme::Jwt {
            let fitting = |kind: KeyKind| -> String {
                let algs: Vec<&str> =
                    JwtAlgorithm::ALL.iter().filter(|a| a.key_kind() == kind).map(|a| a.as_str()).collect();
                algs.join(", ")
            };
            match (&p.public_key, &p.algorithm) {
                (Some(key), None) => {
                    sink.report(
                        Code::InconsistentPolicy,
                        p.name.span,
                        &ppath,
                        format!("principal `{}` needs `algorithm` for its key", p.name.value),
                    )
                    .hint = Some(format!(
                        "for this {} key: algorithm {}",
                        key_kind_name(key.value.kind),
                        fitting(key.value.kind)
                    ));
                }
                (Some(key), Some(alg)) if key.value.kind != alg.value.key_kind() => {
                    let (kind, needed) = (key.value.kind, alg.value.key_kind());
                    let message = format!(
                        "algorithm {} needs an {} key, but the public key is an {} key",
                        alg.value,
                        key_kind_name(needed),
                        key_kind_name(kind)
                    );
                    sink.report(Code::InvalidPublicKey, alg.span, &alg.path, message).hint = Some(format!(
                        "for this key use algorithm {}, or give the issuer's {} key",
                        fitting(kind),
                        key_kind_name(needed)
                    ));
                }
                _ => {}
            }
        }
    }
    if scheme == Scheme::Jwt && a.jwt.as_ref().is_none_or(|j| j.value.audience.is_none()) {
        // A token issued for another service of the same issuer must not be accepted here.
        let (span, at) = match &a.jwt {
            Some(j) => (j.span, j.path.clone()),
            None => (a.scheme.span, path.clone()),
        };
        sink.report(
            Code::MissingKey,
            span,
            &at,
            format!("policy `{}` with scheme jwt has no `jwt.audience`", template.name),
        )
        .hint = Some(
            "write the `aud` your issuer puts in tokens for this service (`jwt: { audience: orders-api }`), \
             or `audience: any` to accept tokens issued for any service"
                .into(),
        );
    }
    if let Some(jwt) = a.jwt.as_ref().filter(|_| scheme != Scheme::Jwt) {
        sink.report(
            Code::InconsistentPolicy,
            jwt.span,
            &jwt.path,
            format!("`jwt` settings need scheme jwt, not {scheme}"),
        );
    }
    if a.principals.as_ref().is_none_or(Vec::is_empty) {
        sink.report(
            Code::InconsistentPolicy,
            a.scheme.span,
            path,
            format!("policy `{}` lets nobody authenticate: it has no principals", template.name),
        )
        .hint = Some("add at least one principal".into());
    }
}
