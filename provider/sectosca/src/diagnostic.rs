//! Diagnostics are data: a stable code, a message, where it is and how to fix it.
//! Rendering (source snippets, colours) happens at the edge, in the CLI or the provider.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::path::YamlPath;
use crate::source::{Source, Span};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal, $severity:ident, $summary:literal, $hint:literal; )*) => {
        /// Stable diagnostic codes. A code is never reused for another meaning.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $( $(#[$doc])* $variant, )*
        }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            pub const fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }

            pub const fn severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$severity,)* }
            }

            /// One line saying what the code means, for the reference documentation.
            pub const fn summary(self) -> &'static str {
                match self { $(Code::$variant => $summary,)* }
            }

            /// What to do about it, when the diagnostic has no more specific hint.
            pub const fn default_hint(self) -> &'static str {
                match self { $(Code::$variant => $hint,)* }
            }
        }
    };
}

codes! {
    YamlSyntax = "E0101", Error, "the document is not well-formed YAML", "check indentation (spaces, not tabs), quotes and brackets near this position";
    TooLarge = "E0102", Error, "the document is larger than the size limit", "split the policies over several documents";
    TooDeep = "E0103", Error, "the document nests deeper than the depth limit", "flatten the structure; SecTOSCA never needs deep nesting";
    TooManyNodes = "E0104", Error, "the document, with its aliases expanded, has more nodes than the limit", "remove alias chains that multiply content; write the values out";
    DuplicateKey = "E0105", Error, "a mapping has the same key twice", "keep one of the two entries";
    NotOneDocument = "E0106", Error, "the stream is empty or holds more than one document", "put one service template per file or resource";
    ComplexKey = "E0107", Error, "a mapping key is not a plain scalar", "use a plain name as the key";

    UnknownKey = "E0201", Error, "a key that this part of the document does not have", "remove the key or fix its spelling; see docs/guides/sectosca.md for the keys allowed here";
    MissingKey = "E0202", Error, "a required key is missing", "add the key; see docs/guides/sectosca.md for what it takes";
    WrongType = "E0203", Error, "a value of the wrong type (for example a list where a string is expected)", "see docs/guides/sectosca.md for the type this key takes";
    InvalidValue = "E0204", Error, "a value outside the allowed set or range", "use one of the allowed values, within the allowed range";
    UnsupportedVersion = "E0205", Error, "tosca_definitions_version is not one this compiler reads", "write `tosca_definitions_version: tosca_simple_yaml_1_3`";
    InvalidName = "E0206", Error, "a template, policy or input name that is not an identifier", "use letters, digits, `_` and `-`, starting with a letter or `_`, at most 63 characters";
    DuplicateName = "E0207", Error, "two templates or two policies share a name", "give each its own name";
    OutputValue = "E0208", Error, "an output value that cannot be evaluated when the policy is compiled", "an output's value is a literal or `{ get_input: name }`";

    UnknownNodeType = "E0301", Error, "a node template names a type that does not exist", "node types: sdsec.nodes.Unikernel, sdsec.nodes.Hypervisor";
    UnknownPolicyType = "E0302", Error, "a policy names a type that does not exist", "policy types: sdsec.policies.Authentication, Authorization, Firewall, Hardening, Isolation, Audit, Adaptation";
    UnknownProperty = "E0303", Error, "a property that the type does not define", "remove the property or fix its spelling; docs/guides/sectosca.md lists each type's properties";

    InvalidCidr = "E0401", Error, "not an IPv4 or IPv6 network in CIDR notation", "write an address and a prefix length, e.g. 10.0.0.0/8 or 2001:db8::/32";
    InvalidPort = "E0402", Error, "not a port (1-65535) or a port range", "a port is 1-65535; a range is written low-high, e.g. 8000-8099";
    InvalidGlob = "E0403", Error, "not a valid path glob", "start with `/`; `*` matches within a segment, `**` whole segments";
    InvalidDuration = "E0404", Error, "not a duration such as 90s, 15m, 24h or 7d", "use numbers with units s, m, h or d, e.g. 90s, 15m, 24h, 7d, 1h30m";
    InvalidPasswordHash = "E0405", Error, "not an argon2 or bcrypt password hash in PHC/MCF form", "store an argon2id PHC string or a bcrypt hash, never the password";
    InvalidTokenHash = "E0406", Error, "not a SHA-256 token hash (64 hex digits); plaintext tokens are refused", "store the token's SHA-256: printf %s \"$TOKEN\" | sha256sum";
    InvalidPublicKey = "E0407", Error, "not a PEM public key usable with the declared algorithm", "give the PEM public key (-----BEGIN PUBLIC KEY-----) that matches `algorithm`";
    InvalidMethod = "E0408", Error, "not an HTTP method", "methods: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE, CONNECT";
    Ipv6Egress = "E0409", Error, "an IPv6 network as an egress destination, which the host does not enforce", "allow an IPv4 network; the host enforces egress for IPv4 only";

    UnknownTarget = "E0501", Error, "a policy target names no node template", "name a node template of this document, or fix the spelling";
    UnknownRequirementTarget = "E0502", Error, "a requirement names no node template", "name a node template of this document, or fix the spelling";
    WrongRequirementTarget = "E0503", Error, "a requirement names a node template of the wrong type", "`host` names a sdsec.nodes.Hypervisor; `connects_to` a sdsec.nodes.Unikernel";
    UnknownInput = "E0504", Error, "a reference to an input that is not declared", "declare it under topology_template.inputs, or fix the spelling";
    UnknownPolicyReference = "E0505", Error, "an adaptation overrides a policy that does not exist", "name a policy of this document";
    WrongTargetType = "E0506", Error, "a policy targets a node template its type does not apply to", "target unikernels; hypervisors are constrained through Isolation policies";

    MissingInput = "E0601", Error, "a required input has no value and no default", "give it a value (Terraform `inputs`, CLI `--input name=value`) or a default";
    InputConstraint = "E0602", Error, "an input value violates the input's constraints", "give a value that meets the input's constraints";
    InputType = "E0603", Error, "an input value does not have the input's type", "give a value of the input's declared type";
    UndeclaredInput = "E0604", Error, "a value was given for an input the document does not declare", "declare the input, or stop passing it";

    PolicyConflict = "E0701", Error, "policies of one type on one target that cannot be merged", "make the policies agree, or target them at different unikernels";
    InconsistentPolicy = "E0702", Error, "properties of one policy that contradict each other", "make the policy's properties agree with each other";
    InvalidAdaptation = "E0703", Error, "an adaptation whose overrides cannot be applied", "an adaptation overrides properties of ordinary policies, one value per property";

    TrustTooLow = "E0801", Error, "the host's trust level is below the isolation policy's min_trust", "place the unikernel on a host trusted enough, or lower min_trust";
    TenantNotAllowed = "E0802", Error, "the host's tenant is not among the tenants the isolation policy allows", "place the unikernel on a host of an allowed tenant, or allow the host's tenant";
    HostNotDedicated = "E0803", Error, "a dedicated_host requirement on a host that other unikernels share", "give the unikernel a host of its own";

    UnknownRole = "W0901", Warning, "an authorization rule names a role that no principal has", "give a principal the role, or fix the rule";
    NoTargets = "W0902", Warning, "a policy applies to no unikernel", "name the unikernels it protects in `targets`";
    UnusedInput = "W0903", Warning, "an input is declared but never used", "use it with `{ get_input: name }` or in an adaptation's `when`, or remove it";

    ImportNotFound = "E1001", Error, "an imported document cannot be read", "check the path: it is relative to the importing document (in Terraform, to the policy's base_dir)";
    ImportCycle = "E1002", Error, "a document imports itself, directly or through others", "import the shared parts from a third document that imports neither";
    DuplicateImported = "E1003", Error, "an input, node template, policy or output defined in two of the documents merged by imports", "keep one definition, or rename one of them";
    UnsupportedImport = "E1004", Error, "an import that is not a local document's relative path (a URL, an absolute path, a repository, a namespace)", "write `- relative/path.yaml` or `- file: relative/path.yaml`";
    TooManyImports = "E1005", Error, "imports that go past the limits on their number or depth", "import fewer documents, or flatten the chain of imports";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Where a diagnostic points in a source document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    pub file: Arc<str>,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// Byte range in `file`'s text.
    #[serde(skip)]
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    /// The YAML path of the offending value; empty for problems with the whole document.
    #[serde(serialize_with = "serialize_display")]
    pub path: YamlPath,
    pub location: Option<Location>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The input whose given value this is about (`--input`, Terraform's `inputs`), so that a
    /// caller can point at it; `None` for problems in the document itself.
    #[serde(skip)]
    pub input: Option<String>,
}

fn serialize_display<S: serde::Serializer, T: fmt::Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl Diagnostic {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            severity: code.severity(),
            message: message.into(),
            path: YamlPath::root(),
            location: None,
            hint: None,
            input: None,
        }
    }

    /// Places the diagnostic at `span` of `source`. While the compiler runs, `span` counts
    /// from [`Source::base`] (it is made relative to `file` before the compilation ends).
    pub fn at(mut self, source: &Source, span: Span, path: &YamlPath) -> Self {
        let (line, column) = source.line_col(span.start.saturating_sub(source.base()));
        self.location = Some(Location { file: source.name.clone(), line, column, span });
        self.path = path.clone();
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    /// One line: `file:line:col: error[E0401] message (at path)`, then the hint.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(loc) = &self.location {
            write!(f, "{}:{}:{}: ", loc.file, loc.line, loc.column)?;
        }
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{sev}[{}] {}", self.code, self.message)?;
        if !self.path.is_root() {
            write!(f, " (at {})", self.path)?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "; hint: {hint}")?;
        }
        Ok(())
    }
}

/// Collects diagnostics for one source (and the sources it imports) while a stage runs.
#[derive(Debug)]
pub struct Sink<'s> {
    /// The document compiled.
    pub source: &'s Source,
    /// The documents it imports, by increasing [`Source::base`].
    imported: Vec<Source>,
    pub diagnostics: Vec<Diagnostic>,
}

impl<'s> Sink<'s> {
    pub fn new(source: &'s Source) -> Self {
        Self { source, imported: Vec::new(), diagnostics: Vec::new() }
    }

    /// An empty sink that places diagnostics as this one does, for reporting tentatively.
    pub fn scratch(&self) -> Sink<'s> {
        Sink { source: self.source, imported: self.imported.clone(), diagnostics: Vec::new() }
    }

    /// Adds an imported document; its base must be past every document's end.
    pub(crate) fn add_source(&mut self, source: Source) {
        self.imported.push(source);
    }

    /// The imported documents, in the order they were read.
    pub(crate) fn imported(&self) -> &[Source] {
        &self.imported
    }

    /// The document a span is in.
    pub(crate) fn source_of(&self, span: Span) -> &Source {
        self.imported.iter().rev().find(|s| s.contains(span)).unwrap_or(self.source)
    }

    pub fn report(&mut self, code: Code, span: Span, path: &YamlPath, message: impl Into<String>) -> &mut Diagnostic {
        let source = self.imported.iter().rev().find(|s| s.contains(span)).unwrap_or(self.source);
        let d = Diagnostic::new(code, message).at(source, span, path);
        self.diagnostics.push(d);
        let last = self.diagnostics.len() - 1;
        &mut self.diagnostics[last]
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Helper so that `sink.report(...).hint("...")` reads well.
pub trait HintExt {
    fn hint(&mut self, hint: impl Into<String>);
}

impl HintExt for Diagnostic {
    fn hint(&mut self, hint: impl Into<String>) {
        self.hint = Some(hint.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut seen = std::collections::BTreeSet::new();
        for code in Code::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert_eq!(s.len(), 5);
            let expect = if code.severity() == Severity::Error { 'E' } else { 'W' };
            assert!(s.starts_with(expect), "{s} prefix does not match its severity");
        }
    }
}
