//! Diagnostics for machines: SARIF 2.1.0 (code scanning in CI and editors) and GitHub
//! Actions workflow commands (annotations on a pull request's lines).

use std::path::Path;

use sectosca::{Code, Diagnostic, Severity, Source};
use serde_json::{Value, json};

/// Where SARIF's own schema is published.
const SARIF_SCHEMA: &str = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";
/// Where each rule is explained.
const RULES_URI: &str =
    "https://github.com/sdsec/terraform-provider-sdsec/blob/main/docs/guides/sectosca.md#diagnostic-codes";

/// One SARIF log with one run of `sdsec check` over `checked` (each document with those it
/// imports, and their diagnostics, each at the document it names): a rule per diagnostic code, a result per diagnostic. Files under `root`
/// (the directory the check ran in, normally the repository's) are named relative to it,
/// as code scanning expects; others by `file://` URI.
pub fn sarif(checked: &[(Vec<Source>, Vec<Diagnostic>)], root: &Path) -> Value {
    let rules: Vec<Value> = Code::ALL
        .iter()
        .map(|code| {
            json!({
                "id": code.as_str(),
                "name": format!("{code:?}"),
                "shortDescription": { "text": code.summary() },
                "fullDescription": { "text": code.summary() },
                "help": { "text": code.default_hint() },
                "helpUri": RULES_URI,
                "defaultConfiguration": { "level": level(code.severity()) },
            })
        })
        .collect();
    let results: Vec<Value> = checked
        .iter()
        .flat_map(|(sources, diagnostics)| {
            diagnostics.iter().filter_map(move |d| Some(result(sectosca::source::of(sources, d)?, d, root)))
        })
        .collect();
    // Each document once, even when several of the checked ones import it.
    let mut names: Vec<&str> = Vec::new();
    for (sources, _) in checked {
        for source in sources {
            if !names.contains(&&*source.name) {
                names.push(&source.name);
            }
        }
    }
    let artifacts: Vec<Value> = names.iter().map(|name| json!({ "location": artifact(name, root) })).collect();
    json!({
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "sdsec",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": RULES_URI,
                "rules": rules,
            } },
            "originalUriBaseIds": { "%SRCROOT%": { "uri": format!("file://{}/", encode(&root.display().to_string())) } },
            "artifacts": artifacts,
            "results": results,
            "columnKind": "unicodeCodePoints",
        }],
    })
}

fn result(source: &Source, d: &Diagnostic, root: &Path) -> Value {
    let index = Code::ALL.iter().position(|code| *code == d.code).unwrap_or_default();
    let mut text = d.message.clone();
    if let Some(hint) = &d.hint {
        text.push_str(&format!(" (hint: {hint})"));
    }
    // A problem with the whole document is reported at its start.
    let (line, column, end) = match &d.location {
        Some(location) => (location.line, location.column, source.line_col(location.span.end)),
        None => (1, 1, (1, 1)),
    };
    let mut region = json!({ "startLine": line, "startColumn": column });
    if end > (line, column) {
        region["endLine"] = json!(end.0);
        region["endColumn"] = json!(end.1);
    }
    let mut result = json!({
        "ruleId": d.code.as_str(),
        "ruleIndex": index,
        "level": level(d.severity),
        "message": { "text": text },
        "locations": [{ "physicalLocation": {
            "artifactLocation": artifact(&source.name, root),
            "region": region,
        } }],
    });
    if !d.path.is_root() {
        result["locations"][0]["logicalLocations"] = json!([{ "fullyQualifiedName": d.path.to_string() }]);
    }
    result
}

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// Where a file is, for SARIF: relative to `root` (`%SRCROOT%`) when it is under it,
/// else a `file://` URI.
fn artifact(name: &str, root: &Path) -> Value {
    let path = Path::new(name);
    let relative = if path.is_absolute() { path.strip_prefix(root).ok() } else { Some(path) };
    match relative {
        Some(relative) => {
            let relative = relative.to_string_lossy();
            json!({ "uri": encode(relative.trim_start_matches("./")), "uriBaseId": "%SRCROOT%" })
        }
        None => json!({ "uri": format!("file://{}", encode(name)) }),
    }
}

/// A path as a URI path: `/` separators, and only unreserved characters and `/` left
/// unescaped.
fn encode(path: &str) -> String {
    let mut out = String::new();
    for byte in path.replace('\\', "/").bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => out.push(byte as char),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// GitHub Actions workflow commands, one line per diagnostic:
/// `::error file=…,line=…,col=…,title=…::message`, each at the document it is in (`sources`:
/// the compiled document and those it imports).
pub fn github(sources: &[Source], diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diagnostics {
        let Some(source) = sectosca::source::of(sources, d) else { continue };
        let command = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut properties = vec![format!("file={}", property(&source.name))];
        if let Some(location) = &d.location {
            properties.push(format!("line={}", location.line));
            properties.push(format!("col={}", location.column));
            let (end_line, end_column) = source.line_col(location.span.end);
            if end_line == location.line && end_column > location.column {
                properties.push(format!("endColumn={end_column}"));
            }
        }
        properties.push(format!("title={}", property(&format!("sdsec {}", d.code.as_str()))));
        let mut message = d.message.clone();
        if let Some(hint) = &d.hint {
            message.push_str(&format!("\nhint: {hint}"));
        }
        out.push_str(&format!("::{command} {}::{}\n", properties.join(","), data(&message)));
    }
    out
}

/// A workflow command's message: `%`, CR and LF escaped.
fn data(text: &str) -> String {
    text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// A workflow command's property value: as a message, and `:` and `,` too.
fn property(text: &str) -> String {
    data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    const BROKEN: &str = "tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  node_templates:
    api: { type: sdsec.nodes.Unikernel }
  policies:
    - fw:
        type: sdsec.policies.Firewall
        properties: { ingress: [ { from: [ 10.0.0.0/33 ], ports: [8080] } ] }
";

    fn checked() -> (Vec<Source>, Vec<Diagnostic>) {
        let source = Source::new("policies/a b,c.yaml", BROKEN);
        let compiled = sectosca::compile(&source, &Default::default(), &sectosca::Options::default());
        assert!(!compiled.diagnostics.is_empty());
        (compiled.sources, compiled.diagnostics)
    }

    #[test]
    fn sarif_has_a_rule_per_code_and_results_at_their_lines() {
        let (source, diagnostics) = checked();
        let log = sarif(&[(source, diagnostics.clone())], Path::new("/work/repo"));
        assert_eq!(log["version"], "2.1.0");
        let run = &log["runs"][0];
        let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), Code::ALL.len());
        let results = run["results"].as_array().unwrap();
        assert_eq!(results.len(), diagnostics.len());
        let first = &results[0];
        let index = first["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], first["ruleId"]);
        assert_eq!(first["ruleId"], diagnostics[0].code.as_str());
        let location = diagnostics[0].location.as_ref().unwrap();
        let physical = &first["locations"][0]["physicalLocation"];
        assert_eq!(physical["region"]["startLine"], location.line);
        assert_eq!(physical["region"]["startColumn"], location.column);
        assert_eq!(physical["artifactLocation"]["uri"], "policies/a%20b%2Cc.yaml");
        assert_eq!(physical["artifactLocation"]["uriBaseId"], "%SRCROOT%");
        assert_eq!(run["originalUriBaseIds"]["%SRCROOT%"]["uri"], "file:///work/repo/");
        let inside = artifact("/work/repo/policies/x.yaml", Path::new("/work/repo"));
        assert_eq!(inside, json!({ "uri": "policies/x.yaml", "uriBaseId": "%SRCROOT%" }));
        assert_eq!(artifact("/etc/p.yaml", Path::new("/work/repo")), json!({ "uri": "file:///etc/p.yaml" }));
        assert_eq!(first["level"], "error");
    }

    #[test]
    fn github_annotations_escape_what_the_command_syntax_reserves() {
        let (source, diagnostics) = checked();
        let text = github(&source, &diagnostics);
        let first = text.lines().next().unwrap();
        let line = diagnostics[0].location.as_ref().unwrap().line;
        assert!(first.starts_with(&format!("::error file=policies/a b%2Cc.yaml,line={line},col=")), "{first}");
        assert!(first.contains(&format!(",title=sdsec {}::", diagnostics[0].code.as_str())), "{first}");
        assert_eq!(text.lines().count(), diagnostics.len());
        assert_eq!(data("50%\nnext"), "50%25%0Anext");
        assert_eq!(property("a:b,c"), "a%3Ab%2Cc");
    }
}
