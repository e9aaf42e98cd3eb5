//! Imported files between plan and apply.
//!
//! Terraform plans again at apply and requires the same values as in the plan, but it does
//! not tell the provider what the plan said: a document's imports, read from files that
//! Terraform does not track, could compile to another digest at apply, which Terraform
//! reports as "Provider produced inconsistent final plan". So each refresh and apply keeps,
//! in the resource's private data (which Terraform stores with the state and in a saved
//! plan), the SHA-256 of every imported file as read then; planning compares the files read
//! now with those, and an imported file that differs is an error that names it and says to
//! plan again. In a plan with refresh the files were just read, so they only differ if
//! changed in between; in `terraform apply PLAN` they were read when the plan was made.
//! (`-refresh=false` plans compare with the last apply: plan with refresh after editing an
//! imported file.)

use std::collections::BTreeMap;

use sectosca::Source;
use serde::{Deserialize, Serialize};
use tfplugin::{AttributePath, Diagnostic, PlanResult};

use super::model::Model;
use crate::policy::{self, fields};

/// What the private data holds: where imports were read from, and the digest of each.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    #[serde(default)]
    pub base_dir: String,
    /// Imported document (its name relative to `base_dir`) → `sha256:` of its text.
    #[serde(default)]
    pub imports: BTreeMap<String, String>,
}

impl Seen {
    /// The imported documents of a compile (the first source is the document itself).
    fn of(base_dir: &str, sources: &[Source]) -> Self {
        let imports: BTreeMap<String, String> =
            sources.iter().skip(1).map(|s| (s.name.to_string(), ::plan::sha256_digest(s.text.as_bytes()))).collect();
        if imports.is_empty() {
            return Seen::default();
        }
        Seen { base_dir: base_dir.to_owned(), imports }
    }

    /// The imports of `document` as they are now, read from `base_dir`; none when the
    /// document imports nothing. Documents with errors too: what could be read.
    pub fn now(document: &str, inputs: &BTreeMap<String, String>, base_dir: &str) -> Self {
        match policy::compile_policy(document, inputs, base_dir, &AttributePath::root()) {
            Ok(compiled) => Seen::of(base_dir, &compiled.sources),
            Err(_) => Seen::of(base_dir, &policy::compile_in(document, inputs, base_dir).sources),
        }
    }

    /// As private data: nothing when there are no imports.
    pub fn encode(&self) -> Vec<u8> {
        if self.imports.is_empty() { Vec::new() } else { serde_json::to_vec(self).unwrap_or_default() }
    }

    /// From private data; anything else (nothing, or another provider version's) is none.
    pub fn decode(private: &[u8]) -> Self {
        serde_json::from_slice(private).unwrap_or_default()
    }

    /// The imported documents read both times, from the same directory, that differ.
    fn changed_since(&self, before: &Seen) -> Vec<&str> {
        if self.base_dir != before.base_dir {
            return Vec::new();
        }
        self.imports
            .iter()
            .filter(|(name, digest)| before.imports.get(*name).is_some_and(|d| d != *digest))
            .map(|(name, _)| name.as_str())
            .collect()
    }
}

/// After a plan: the imports read now become the planned private data (what apply keeps),
/// or the plan fails if one of them changed since the prior state's refresh or apply.
pub fn check_plan(prior_private: &[u8], result: &mut PlanResult) {
    if result.diagnostics.has_errors() {
        return;
    }
    let Ok(planned) = Model::decode(&result.planned_state) else { return };
    let (Some((document, inputs)), Some(base_dir)) = (planned.policy.source(), planned.policy.base_dir()) else {
        return;
    };
    let now = Seen::now(&document, &inputs, &base_dir);
    let changed = now.changed_since(&Seen::decode(prior_private));
    if changed.is_empty() {
        result.planned_private = now.encode();
        return;
    }
    let names: Vec<String> = changed.iter().map(|n| format!("`{n}`")).collect();
    result.diagnostics.push(
        Diagnostic::error(
            "Imported document changed since the plan",
            format!(
                "{} (imported by the document, read from base_dir `{base_dir}`) changed since Terraform last \
                 refreshed this policy, when the plan being applied was made: that plan no longer shows what \
                 would be applied, and nothing was changed. Run `terraform plan` again and apply the new plan. \
                 (A plan made with -refresh=false compares the files with those of the last apply: plan with \
                 refresh after editing an imported file.)",
                names.join(", ")
            ),
        )
        .at(AttributePath::attr(fields::BASE_DIR)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_documents_read_both_times_from_the_same_directory_count() {
        let seen = |dir: &str, files: &[(&str, &str)]| Seen {
            base_dir: dir.to_owned(),
            imports: files.iter().map(|(n, d)| ((*n).to_owned(), (*d).to_owned())).collect(),
        };
        let before = seen("p", &[("a.yaml", "sha256:1"), ("b.yaml", "sha256:2")]);
        assert!(seen("p", &[("a.yaml", "sha256:1"), ("c.yaml", "sha256:9")]).changed_since(&before).is_empty());
        assert_eq!(seen("p", &[("a.yaml", "sha256:1"), ("b.yaml", "sha256:3")]).changed_since(&before), ["b.yaml"]);
        assert!(seen("q", &[("b.yaml", "sha256:3")]).changed_since(&before).is_empty());
        assert!(seen("p", &[("b.yaml", "sha256:3")]).changed_since(&Seen::default()).is_empty());
        assert_eq!(Seen::decode(&before.encode()), before);
        assert_eq!(Seen::decode(b""), Seen::default());
        assert!(Seen::default().encode().is_empty());
    }
}
