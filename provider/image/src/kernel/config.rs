//! sdsec's kernel configuration: the fragment kept in the repository, applied on top of
//! `make tinyconfig`, and the check that the configured kernel has every option as asked.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// The fragment (`provider/image/kernel/sdsec.config`), carried by the binary so that a
/// build needs nothing but Debian's source package.
pub const FRAGMENT: &str = include_str!("../../kernel/sdsec.config");

/// sdsec's changes to the kernel source, as (name, unified diff applied with `patch -p1`),
/// in the order they apply. Each patch's header says what it changes and why.
pub const PATCHES: &[(&str, &str)] = &[
    ("virtio-mmio-queue-size-max.patch", include_str!("../../kernel/patches/virtio-mmio-queue-size-max.patch")),
    ("init-on-free-skips-boot-memory.patch", include_str!("../../kernel/patches/init-on-free-skips-boot-memory.patch")),
    ("lapic-bus-khz.patch", include_str!("../../kernel/patches/lapic-bus-khz.patch")),
];

/// Bumped when the build steps change in a way the fragment does not show (another base
/// configuration, another make target, another post-processing of vmlinux).
const BUILD_REVISION: &str = "sdsec-kernel-build-1";

/// An option's value as `.config` writes it: `y`, `m`, a number or a quoted string, or
/// `n` for `# CONFIG_X is not set` (and for an option missing from the file).
pub type Options = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "line {line} of the kernel configuration fragment is neither `CONFIG_X=value`, `# CONFIG_X is not set` nor a comment: {text}"
    )]
    BadLine { line: usize, text: String },
    #[error(
        "the kernel's configuration does not have these options as the fragment asks (a dependency is missing or \
         the option does not exist in this kernel version): {}",
        .0.iter().map(|m| format!("{} (asked {}, got {})", m.option, m.asked, m.got)).collect::<Vec<_>>().join(", ")
    )]
    NotApplied(Vec<Mismatch>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub option: String,
    pub asked: String,
    pub got: String,
}

/// One line of a `.config` file or fragment, if it sets an option.
fn option_of(line: &str) -> Option<(&str, &str)> {
    if let Some(rest) = line.strip_prefix("# ")
        && let Some(name) = rest.strip_suffix(" is not set")
        && name.starts_with("CONFIG_")
    {
        return Some((name, "n"));
    }
    let (name, value) = line.split_once('=')?;
    name.starts_with("CONFIG_").then_some((name, value))
}

/// The options `text` sets, in a `.config` file or a fragment.
pub fn parse(text: &str) -> Result<Options, ConfigError> {
    let mut options = Options::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        match option_of(trimmed) {
            Some((name, value)) => {
                options.insert(name.to_owned(), value.to_owned());
            }
            None if trimmed.is_empty() || trimmed.starts_with('#') => {}
            None => return Err(ConfigError::BadLine { line: index + 1, text: trimmed.to_owned() }),
        }
    }
    Ok(options)
}

/// `base` (a `.config`) with every option of `fragment` set as the fragment says: lines
/// for those options are removed and the fragment's appended, which is what `olddefconfig`
/// then resolves (dependencies, choices).
pub fn merge(base: &str, fragment: &Options) -> String {
    let mut out: String = base
        .lines()
        .filter(|line| option_of(line.trim()).is_none_or(|(name, _)| !fragment.contains_key(name)))
        .flat_map(|line| [line, "\n"])
        .collect();
    for (name, value) in fragment {
        match value.as_str() {
            "n" => out.push_str(&format!("# {name} is not set\n")),
            _ => out.push_str(&format!("{name}={value}\n")),
        }
    }
    out
}

/// Every option of `fragment` whose value in the resolved `.config` differs.
pub fn check(resolved: &str, fragment: &Options) -> Result<(), ConfigError> {
    let have = parse(resolved)?;
    let mismatches: Vec<Mismatch> = fragment
        .iter()
        .filter_map(|(name, asked)| {
            let got = have.get(name).map_or("n", String::as_str);
            (got != asked).then(|| Mismatch { option: name.clone(), asked: asked.clone(), got: got.to_owned() })
        })
        .collect();
    if mismatches.is_empty() { Ok(()) } else { Err(ConfigError::NotApplied(mismatches)) }
}

/// Identifies the configuration (fragment, [`PATCHES`] and build steps) whatever the source
/// version.
pub fn config_digest(fragment: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(BUILD_REVISION.as_bytes());
    hasher.update(b"\n");
    hasher.update(fragment.as_bytes());
    for (name, diff) in PATCHES {
        // Lengths first, so that no two lists of patches hash alike.
        for part in [name.as_bytes(), diff.as_bytes()] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
    }
    format!("sha256:{:x}", hasher.finalize())
}

/// Identifies a build: the configuration and the source package's version. Names the
/// kernel's directory in the cache.
pub fn build_key(fragment: &str, source_version: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(config_digest(fragment).as_bytes());
    hasher.update(b"\n");
    hasher.update(source_version.as_bytes());
    let hex = format!("{:x}", hasher.finalize());
    format!("sdsec-{}", &hex[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fragment_parses_and_names_what_images_need() {
        let options = parse(FRAGMENT).unwrap();
        for needed in ["CONFIG_PVH", "CONFIG_VIRTIO_MMIO", "CONFIG_VIRTIO_NET", "CONFIG_VIRTIO_CONSOLE"] {
            assert_eq!(options.get(needed).map(String::as_str), Some("y"), "{needed}");
        }
        // Images' initramfs is a plain cpio: no decompressor is needed, so none is built.
        for left_out in ["CONFIG_MODULES", "CONFIG_RD_ZSTD", "CONFIG_RD_GZIP", "CONFIG_INPUT"] {
            assert_eq!(options.get(left_out).map(String::as_str), Some("n"), "{left_out}");
        }
    }

    #[test]
    fn every_patch_is_a_described_unified_diff_against_the_tree() {
        for (name, diff) in PATCHES {
            let (header, body) = diff.split_once("\n--- a/").unwrap_or_else(|| panic!("{name}: no `--- a/` line"));
            assert!(header.lines().count() >= 3, "{name}: the header says what the patch does and why");
            assert!(body.contains("\n+++ b/") && body.contains("\n@@ "), "{name}: not a unified diff");
        }
    }

    #[test]
    fn merging_replaces_the_base_lines_and_checking_names_what_did_not_apply() {
        let base = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x\"\n# comment\n";
        let fragment = parse("CONFIG_B=y\n# CONFIG_A is not set\n").unwrap();
        let merged = merge(base, &fragment);
        assert_eq!(merged, "CONFIG_C=\"x\"\n# comment\n# CONFIG_A is not set\nCONFIG_B=y\n");
        assert_eq!(check(&merged, &fragment), Ok(()));

        // As olddefconfig leaves it when B's dependency is missing: B gone.
        let resolved = "# CONFIG_A is not set\nCONFIG_C=\"x\"\n";
        let err = check(resolved, &fragment).unwrap_err();
        assert_eq!(
            err,
            ConfigError::NotApplied(vec![Mismatch { option: "CONFIG_B".into(), asked: "y".into(), got: "n".into() }])
        );
        assert!(err.to_string().contains("CONFIG_B (asked y, got n)"), "{err}");
    }

    #[test]
    fn a_bad_fragment_line_is_named() {
        let err = parse("CONFIG_A=y\nPVH=y\n").unwrap_err();
        assert_eq!(err, ConfigError::BadLine { line: 2, text: "PVH=y".into() });
    }

    #[test]
    fn the_build_key_changes_with_the_fragment_and_the_source_version() {
        let key = build_key(FRAGMENT, "6.1.192-3");
        assert!(key.starts_with("sdsec-") && key.len() == 22, "{key}");
        assert_ne!(key, build_key(FRAGMENT, "6.1.193-1"));
        assert_ne!(key, build_key("CONFIG_A=y\n", "6.1.192-3"));
        assert_ne!(config_digest(FRAGMENT), config_digest("CONFIG_A=y\n"));
    }
}
