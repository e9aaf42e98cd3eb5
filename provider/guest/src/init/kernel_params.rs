//! Kernel parameters the kernel did not recognise. It hands plain ones to init instead:
//! words as arguments, `name=value` as environment variables (beside the HOME and TERM it
//! sets itself). Dotted ones (`page_alloc.shuffle=1`) it takes for parameters of a module
//! that is not there and drops silently; those that are built in show under
//! `/sys/module/<module>/parameters/`. A hardening setting the image asks for that is not in
//! effect is reported rather than lost.

use std::ffi::OsString;
use std::path::Path;

/// What the kernel sets in init's environment itself.
const KERNEL_ENVIRONMENT: &[&str] = &["HOME", "TERM"];

/// The parameters handed to init, as they were written on the command line.
pub fn ignored(args: impl Iterator<Item = OsString>, vars: impl Iterator<Item = (OsString, OsString)>) -> Vec<String> {
    let words = args.skip(1).map(|a| a.to_string_lossy().into_owned());
    let settings = vars
        .filter(|(name, _)| !KERNEL_ENVIRONMENT.iter().any(|k| name == k))
        .map(|(name, value)| format!("{}={}", name.to_string_lossy(), value.to_string_lossy()));
    words.chain(settings).collect()
}

/// The dotted parameters of `cmdline` (other than sdsec's own, which init reads) that no
/// built-in code under `sys_module` took.
pub fn unapplied_dotted(cmdline: &str, sys_module: &Path) -> Vec<String> {
    cmdline
        .split_whitespace()
        .filter(|word| {
            let name = word.split_once('=').map_or(*word, |(name, _)| name);
            let Some((module, param)) = name.split_once('.') else { return false };
            // The kernel treats dashes and underscores in names alike, and shows underscores.
            let (module, param) = (module.replace('-', "_"), param.replace('-', "_"));
            module != "sdsec" && !sys_module.join(module).join("parameters").join(param).exists()
        })
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_parameters_without_their_sysfs_entry_are_reported() {
        let sys = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(sys.path().join("page_alloc/parameters")).unwrap();
        std::fs::write(sys.path().join("page_alloc/parameters/shuffle"), "Y\n").unwrap();
        let line = "console=ttyS0 page_alloc.shuffle=1 sdsec.ip=10.0.2.15/24 vir-tio.x=1 quiet";
        assert_eq!(unapplied_dotted(line, sys.path()), ["vir-tio.x=1"]);
        assert!(unapplied_dotted("page-alloc.shuffle=1", sys.path()).is_empty(), "dashes are underscores");
    }

    #[test]
    fn words_and_settings_other_than_the_kernels_own_are_reported() {
        let args = ["/init", "nosmt"].map(OsString::from).into_iter();
        let vars = [("HOME", "/"), ("TERM", "linux"), ("vsyscall", "none")]
            .map(|(n, v)| (OsString::from(n), OsString::from(v)))
            .into_iter();
        assert_eq!(ignored(args, vars), ["nosmt", "vsyscall=none"]);
        let clean = ignored(["/init"].map(OsString::from).into_iter(), std::iter::empty());
        assert!(clean.is_empty());
    }
}
