//! Kernel parameters the kernel did not recognise. It hands them to init instead: words
//! as arguments, `name=value` as environment variables (beside the HOME and TERM it sets
//! itself). A hardening setting the image asks for that lands here is not in effect, so
//! it is reported rather than lost.

use std::ffi::OsString;

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

#[cfg(test)]
mod tests {
    use super::*;

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
