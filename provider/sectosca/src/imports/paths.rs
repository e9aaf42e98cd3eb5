//! The names of imported documents, worked out from the import's path alone (no I/O).

/// The file name of the sdsec TOSCA profile (`schemas/sdsec-profile.yaml`): an import of a
/// file of this name, in any directory, is the built-in profile and is not read.
pub const PROFILE_FILE: &str = "sdsec-profile.yaml";

/// Whether an import names the sdsec profile.
pub fn is_profile(import: &str) -> bool {
    import.rsplit(['/', '\\']).next() == Some(PROFILE_FILE)
}

/// The name of the document `import` names, relative to the document named `importer`:
/// joined to the importer's directory and normalised lexically (`.` dropped, `dir/..`
/// removed; `..` that climbs above the importer's directory is kept, so
/// `../common/audit.yaml` works), with `/` separators.
///
/// Refused, with the reason: URLs, absolute paths, `~`, backslashes and empty paths.
pub fn join(importer: &str, import: &str) -> Result<String, String> {
    if import.is_empty() {
        return Err("an import names no file".into());
    }
    if import.contains("://") || ["http:", "https:", "file:", "git:", "ssh:"].iter().any(|s| import.starts_with(s)) {
        return Err(format!(
            "`{import}` is a URL: SecTOSCA imports local files, by a path relative to the importing document"
        ));
    }
    if import.starts_with('/') || import.starts_with('~') || import.as_bytes().get(1) == Some(&b':') {
        return Err(format!(
            "`{import}` is an absolute path: write the path relative to the importing document (`../` climbs up)"
        ));
    }
    if import.contains('\\') {
        return Err(format!("`{import}` has a backslash: separate directories with `/`"));
    }
    let absolute = importer.starts_with('/');
    let mut parts: Vec<&str> = importer.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    parts.pop(); // the importer's own file name
    for part in import.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if absolute => {}
                _ => parts.push(".."),
            },
            name => parts.push(name),
        }
    }
    if parts.last().is_none_or(|p| *p == "..") {
        return Err(format!("`{import}` names a directory, not a document"));
    }
    let joined = parts.join("/");
    Ok(if absolute { format!("/{joined}") } else { joined })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_relative_to_the_importer() {
        assert_eq!(join("policies/main.yaml", "common/audit.yaml").unwrap(), "policies/common/audit.yaml");
        assert_eq!(join("policies/main.yaml", "../common/audit.yaml").unwrap(), "common/audit.yaml");
        assert_eq!(join("main.yaml", "../x.yaml").unwrap(), "../x.yaml");
        assert_eq!(join("./a/b.yaml", "./c/../d.yaml").unwrap(), "a/d.yaml");
        assert_eq!(join("document", "a.yaml").unwrap(), "a.yaml");
        assert_eq!(join("../p/main.yaml", "../../q.yaml").unwrap(), "../../q.yaml");
        assert_eq!(join("/srv/p/main.yaml", "../q.yaml").unwrap(), "/srv/q.yaml");
    }

    #[test]
    fn refuses_urls_and_absolute_paths() {
        for import in
            ["https://x/y.yaml", "file:///etc/a.yaml", "/etc/a.yaml", "~/a.yaml", "C:/a.yaml", "a\\b.yaml", ""]
        {
            assert!(join("main.yaml", import).is_err(), "{import}");
        }
        assert!(join("main.yaml", "..").is_err());
    }

    #[test]
    fn knows_the_profile_by_its_file_name() {
        assert!(is_profile("sdsec-profile.yaml"));
        assert!(is_profile("../schemas/sdsec-profile.yaml"));
        assert!(!is_profile("my-sdsec-profile.yaml"));
    }
}
