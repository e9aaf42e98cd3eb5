//! Golden tests: documents under `tests/golden/` and what compiling them must give.
//!
//! A new case is a new pair of files, no code:
//!
//! - `valid/NAME.yaml` (+ optional `NAME.inputs`) → `valid/NAME.plans.json`: the plans map,
//!   pretty-printed. A valid case must compile without any diagnostic, not even a warning
//!   (cases with warnings belong in `invalid/`).
//! - `invalid/NAME.yaml` (+ optional `NAME.inputs`) → `invalid/NAME.diagnostics`: one line per
//!   diagnostic, `CODE LINE:COL PATH | message`, then ` | hint: ...` when there is a hint.
//!   An invalid case must give at least one diagnostic.
//!
//! A case may import documents: they are read relative to the case (cases share the
//! documents under `fragments/`), and a diagnostic in one of them shows its file before
//! the line, `CODE FILE:LINE:COL PATH | message`.
//!
//! `NAME.inputs` holds `name=value` lines (blank lines and lines starting with `#` are
//! skipped). `UPDATE_GOLDEN=1 cargo test -p sdsec-sectosca --test golden` rewrites the
//! expected files; without it a mismatch fails with a diff, and so does a case without its
//! expected file or an expected file without its case.
//!
//! The runtime's and the image builder's tests do not link the compiler: they load plans
//! compiled here. `provider/{guest,image}/tests/policies/NAME.yaml` → `NAME.plans.json` works
//! like `valid/`, except that warnings are allowed (a policy fixture may name roles no
//! principal has: the tests add the principals to the plan).

// Test code fails by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sectosca::{Compilation, LoadError, Options, Source};

fn golden_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(kind)
}

fn updating() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| !v.is_empty() && v != "0")
}

/// The `.yaml` files of a directory, sorted, and every other file in it.
fn case_files(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut yaml = Vec::new();
    let mut other = Vec::new();
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            yaml.push(path);
        } else {
            other.push(path);
        }
    }
    yaml.sort();
    other.sort();
    (yaml, other)
}

fn read_inputs(yaml: &Path) -> BTreeMap<String, String> {
    let path = yaml.with_extension("inputs");
    let Ok(text) = std::fs::read_to_string(&path) else { return BTreeMap::new() };
    let mut inputs = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            panic!("{}:{}: expected `name=value`, found `{line}`", path.display(), i + 1);
        };
        inputs.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    inputs
}

fn compile(yaml: &Path) -> Compilation {
    let text = std::fs::read_to_string(yaml).unwrap_or_else(|e| panic!("cannot read {}: {e}", yaml.display()));
    let name = yaml.file_name().and_then(|n| n.to_str()).unwrap_or("document").to_owned();
    let dir = yaml.parent().unwrap_or(Path::new(".")).to_owned();
    let loader = move |name: &str| {
        std::fs::read_to_string(dir.join(name)).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => LoadError::NotFound,
            _ => LoadError::Unreadable(e.to_string()),
        })
    };
    sectosca::compile_with(&Source::new(name, text), &read_inputs(yaml), &Options::default(), &loader)
}

/// One line per diagnostic: `CODE LINE:COL PATH | message | hint: ...`.
fn render_diagnostics(compilation: &Compilation) -> String {
    let mut out = String::new();
    let main = compilation.sources.first().map(|s| s.name.clone());
    for d in &compilation.diagnostics {
        let at = d.location.as_ref().map_or("?:?".to_owned(), |l| match &main {
            Some(main) if *main == l.file => format!("{}:{}", l.line, l.column),
            _ => format!("{}:{}:{}", l.file, l.line, l.column),
        });
        let _ = write!(out, "{} {at} {} | {}", d.code, d.path, d.message.replace('\n', "\\n"));
        if let Some(hint) = &d.hint {
            let _ = write!(out, " | hint: {}", hint.replace('\n', "\\n"));
        }
        out.push('\n');
    }
    out
}

fn render_plans(compilation: &Compilation) -> String {
    let mut text = serde_json::to_string_pretty(&compilation.plans).expect("plans serialise");
    text.push('\n');
    text
}

/// Compares `actual` with the expected file (or rewrites it), adding a failure to `failures`.
fn check_expected(expected_path: &Path, actual: &str, failures: &mut Vec<String>) {
    if updating() {
        std::fs::write(expected_path, actual)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", expected_path.display()));
        return;
    }
    let Ok(expected) = std::fs::read_to_string(expected_path) else {
        failures.push(format!(
            "{} is missing: run `UPDATE_GOLDEN=1 cargo test -p sdsec-sectosca --test golden`, then review it",
            expected_path.display()
        ));
        return;
    };
    if expected != actual {
        let name = expected_path.display().to_string();
        let diff = similar_asserts::SimpleDiff::from_str(&expected, actual, "expected", "actual");
        failures.push(format!("{name} differs from what the compiler gives:\n{diff}"));
    }
}

/// Files other than `.yaml` must be the expected file or the inputs of some case.
fn check_orphans(yaml: &[PathBuf], other: &[PathBuf], expected_suffix: &str, failures: &mut Vec<String>) {
    for path in other {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let stem = name.strip_suffix(expected_suffix).or_else(|| name.strip_suffix(".inputs"));
        let owned = stem.is_some_and(|stem| yaml.iter().any(|y| y.file_stem().is_some_and(|s| s == stem)));
        if !owned {
            failures.push(format!("{} belongs to no case (expected NAME.yaml beside it)", path.display()));
        }
    }
}

fn finish(dir: &Path, cases: usize, failures: Vec<String>) {
    let dir = dir.display();
    assert!(cases > 0, "no golden cases found in {dir}");
    assert!(
        failures.is_empty(),
        "{} of the golden cases in {dir} failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Checks that the documents of `dir` compile to their `.plans.json`; `warnings` says whether
/// a document may give warnings (errors never).
fn check_plans(dir: &Path, warnings: bool) {
    let (yaml, other) = case_files(dir);
    let mut failures = Vec::new();
    for path in &yaml {
        let compilation = compile(path);
        let refused = if warnings { compilation.has_errors() } else { !compilation.diagnostics.is_empty() };
        if refused {
            failures.push(format!(
                "{} must compile without {}, but gives:\n{}",
                path.display(),
                if warnings { "errors" } else { "diagnostics" },
                render_diagnostics(&compilation)
            ));
            continue;
        }
        if compilation.plans.is_empty() {
            failures.push(format!("{} compiles to no plan at all", path.display()));
        }
        check_expected(&path.with_extension("plans.json"), &render_plans(&compilation), &mut failures);
    }
    check_orphans(&yaml, &other, ".plans.json", &mut failures);
    finish(dir, yaml.len(), failures);
}

#[test]
fn valid_documents_compile_to_the_expected_plans() {
    check_plans(&golden_dir("valid"), false);
}

/// The plans the runtime's and the image builder's tests load are what the compiler gives
/// today.
#[test]
fn plan_fixtures_of_other_crates_are_the_compiled_plans() {
    for crate_dir in ["guest", "image"] {
        check_plans(&Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(crate_dir).join("tests/policies"), true);
    }
}

#[test]
fn invalid_documents_give_the_expected_diagnostics() {
    let dir = golden_dir("invalid");
    let (yaml, other) = case_files(&dir);
    let mut failures = Vec::new();
    for path in &yaml {
        let compilation = compile(path);
        if compilation.diagnostics.is_empty() {
            failures.push(format!("{} gives no diagnostic; move it to valid/ or fix the compiler", path.display()));
            continue;
        }
        if compilation.has_errors() && !compilation.plans.is_empty() {
            failures.push(format!("{} has errors but still gives plans", path.display()));
        }
        check_expected(&path.with_extension("diagnostics"), &render_diagnostics(&compilation), &mut failures);
    }
    check_orphans(&yaml, &other, ".diagnostics", &mut failures);
    finish(&dir, yaml.len(), failures);
}

/// Every error code that a document can trigger appears in some invalid case, so adding a
/// code without a golden case fails here.
#[test]
fn every_reachable_code_has_an_invalid_case() {
    // Codes no document can trigger with default options: `TooLarge` needs an 8 MiB document
    // (covered by the parser's unit test with a small limit); `TooManyImports` a chain of
    // more than 8 imports (covered by the unit tests of imports).
    const NOT_COVERED: &[&str] = &["E0102", "E1005"];
    // From the compiler rather than the expected files, which UPDATE_GOLDEN may be rewriting.
    let dir = golden_dir("invalid");
    let mut seen = std::collections::BTreeSet::new();
    for path in case_files(&dir).0 {
        seen.extend(compile(&path).diagnostics.iter().map(|d| d.code.as_str()));
    }
    let missing: Vec<&str> = sectosca::Code::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|c| !seen.contains(c) && !NOT_COVERED.contains(c))
        .collect();
    assert!(missing.is_empty(), "codes without an invalid golden case: {missing:?}");
}
