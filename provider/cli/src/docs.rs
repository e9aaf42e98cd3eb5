//! Generates the registry documentation (`docs/index.md`, `docs/resources/*.md`,
//! `docs/data-sources/*.md`, `docs/functions/*.md`) from the schemas' descriptions and the
//! runnable examples under `examples/`. `sdsec docs` writes it; a test fails when the
//! committed files differ from what this generates.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sdsec_provider::SdsecProvider;
use tfplugin::{Block, FunctionSignature, Presence, Provider as _, Type};

#[derive(Debug, thiserror::Error)]
pub enum DocsError {
    #[error("cannot read example {path}: {source}")]
    Example { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// One generated page: its path under `docs/` and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub path: PathBuf,
    pub text: String,
}

fn type_label(typ: &Type) -> String {
    match typ {
        Type::Bool => "Boolean".into(),
        Type::Number => "Number".into(),
        Type::String => "String".into(),
        Type::Dynamic => "Dynamic".into(),
        Type::List(e) => format!("List of {}", type_label(e)),
        Type::Set(e) => format!("Set of {}", type_label(e)),
        Type::Map(e) => format!("Map of {}", type_label(e)),
        Type::Object(_) => "Object".into(),
        Type::Tuple(_) => "Tuple".into(),
    }
}

fn example(examples: &Path, relative: &str) -> Result<Option<String>, DocsError> {
    let path = examples.join(relative);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text.trim_end().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(DocsError::Example { path, source }),
    }
}

/// What the provider needs of the Terraform CLI, and what it is tested with.
const VERSIONS: &str = "## Requirements\n\n\
    - Terraform 1.8 or later, or OpenTofu 1.7 or later: the provider-defined functions need them. The \
    resources and data sources speak plugin protocol 6 (Terraform 1.0 and later) but are supported from the \
    same releases. Older releases refuse any configuration that calls a `provider::sdsec::` function: they \
    cannot parse the call (Terraform 1.6 reports \"Missing newline after argument\").\n\
    - Tested with Terraform 1.15.5, the newest, and 1.8.4, the oldest supported: the test suite installs both \
    and applies, changes, imports and destroys a policy and a unikernel serving HTTP, with a \
    `provider::sdsec::policy_digest` call, under each. OpenTofu is not tested.\n\
    - A Linux host: QEMU (`qemu-system-x86_64`) for `hypervisor = \"qemu\"`, a libvirt daemon for `\"libvirt\"` and, on the provider's host, libvirt's client library (`libvirt0` on Debian and Ubuntu), which the provider loads only for `\"libvirt\"`.\n";

fn front_matter(out: &mut String, title: &str, description: &str) {
    let first = description.split(". ").next().unwrap_or(description).trim_end_matches('.');
    let _ = write!(out, "---\npage_title: \"{title}\"\nsubcategory: \"\"\ndescription: |-\n  {first}.\n---\n\n");
}

fn schema_section(out: &mut String, block: &Block) {
    out.push_str("## Schema\n");
    type Belongs = fn(Presence) -> bool;
    let groups: [(&str, Belongs); 3] = [
        ("Required", |p| p == Presence::Required),
        ("Optional", |p| matches!(p, Presence::Optional | Presence::OptionalComputed)),
        ("Read-Only", |p| p == Presence::Computed),
    ];
    for (heading, belongs) in groups {
        let mut attributes: Vec<_> = block.attributes.iter().filter(|a| belongs(a.presence)).collect();
        if attributes.is_empty() {
            continue;
        }
        attributes.sort_by(|a, b| a.name.cmp(&b.name));
        let _ = write!(out, "\n### {heading}\n\n");
        for a in attributes {
            let sensitive = if a.sensitive { ", Sensitive" } else { "" };
            let _ = writeln!(out, "- `{}` ({}{sensitive}) {}", a.name, type_label(&a.typ), a.description);
        }
    }
}

fn example_section(out: &mut String, code: Option<String>, lang: &str) {
    if let Some(code) = code {
        let _ = write!(out, "\n## Example Usage\n\n```{lang}\n{code}\n```\n\n");
    } else {
        out.push('\n');
    }
}

fn resource_like(kind: &str, folder: &str, name: &str, block: &Block, examples: &Path) -> Result<Page, DocsError> {
    let short = name.trim_start_matches("sdsec_");
    let mut text = String::new();
    front_matter(&mut text, &format!("{name} {kind} - sdsec"), &block.description);
    let _ = write!(text, "# {name} ({kind})\n\n{}\n", block.description);
    example_section(
        &mut text,
        example(
            examples,
            &format!("{folder}/{name}/{}.tf", if kind == "Resource" { "resource" } else { "data-source" }),
        )?,
        "terraform",
    );
    schema_section(&mut text, block);
    let block = example(examples, &format!("{folder}/{name}/import-by-string-id.tf"))?;
    let command = example(examples, &format!("{folder}/{name}/import.sh"))?;
    if block.is_some() || command.is_some() {
        text.push_str("\n## Import\n\nImport is supported using the following syntax:\n");
    }
    if let Some(block) = block {
        let _ =
            write!(text, "\nIn Terraform v1.5.0 and later, with an `import` block:\n\n```terraform\n{block}\n```\n");
    }
    if let Some(command) = command {
        let _ = write!(text, "\nWith the `terraform import` command:\n\n```shell\n{command}\n```\n");
    }
    Ok(Page { path: PathBuf::from(folder).join(format!("{short}.md")), text })
}

fn function_page(name: &str, sig: &FunctionSignature, examples: &Path) -> Result<Page, DocsError> {
    let mut text = String::new();
    front_matter(&mut text, &format!("{name} function - sdsec"), &sig.summary);
    let _ = write!(text, "# function: {name}\n\n{}\n", sig.description);
    example_section(&mut text, example(examples, &format!("functions/{name}/function.tf"))?, "terraform");
    let params: Vec<String> =
        sig.parameters.iter().map(|p| format!("{} {}", p.name, type_label(&p.typ).to_lowercase())).collect();
    let _ = write!(
        text,
        "## Signature\n\n```text\n{name}({}) {}\n```\n\n## Arguments\n\n",
        params.join(", "),
        type_label(&sig.return_type).to_lowercase()
    );
    for (i, p) in sig.parameters.iter().enumerate() {
        let _ = writeln!(text, "{}. `{}` ({}) {}", i + 1, p.name, type_label(&p.typ), p.description);
    }
    Ok(Page { path: PathBuf::from("functions").join(format!("{name}.md")), text })
}

/// Every page, generated from the provider's schemas and the examples folder.
pub fn generate(examples: &Path) -> Result<Vec<Page>, DocsError> {
    let provider = SdsecProvider::new();
    let mut pages = Vec::new();

    let schema = provider.schema();
    let mut index = String::new();
    front_matter(&mut index, "sdsec Provider", &schema.block.description);
    let _ = write!(
        index,
        "# sdsec Provider\n\n{}\n\nPolicies are written in SecTOSCA; see the [language reference](guides/sectosca.md).\n\n{VERSIONS}",
        schema.block.description
    );
    example_section(&mut index, example(examples, "provider/provider.tf")?, "terraform");
    schema_section(&mut index, &schema.block);
    pages.push(Page { path: PathBuf::from("index.md"), text: index });

    for resource in provider.resources() {
        pages.push(resource_like("Resource", "resources", resource.type_name(), &resource.schema().block, examples)?);
    }
    for data in provider.data_sources() {
        pages.push(resource_like("Data Source", "data-sources", data.type_name(), &data.schema().block, examples)?);
    }
    for function in provider.functions() {
        pages.push(function_page(function.name(), &function.signature(), examples)?);
    }
    Ok(pages)
}

/// Writes the pages under `docs_dir`.
pub fn write(docs_dir: &Path, pages: &[Page]) -> Result<(), DocsError> {
    for page in pages {
        let path = docs_dir.join(&page.path);
        let fail = |source| DocsError::Write { path: path.clone(), source };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(fail)?;
        }
        std::fs::write(&path, &page.text).map_err(fail)?;
    }
    Ok(())
}
