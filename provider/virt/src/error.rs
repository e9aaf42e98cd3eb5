//! libvirt's errors: the thread's last error (`virGetLastErrorCode`, `virGetLastErrorMessage`)
//! copied when a call fails, and the library missing altogether.

use std::ffi::c_void;

use crate::api::{self, Api};

/// A `virErrorNumber`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorNumber(pub i32);

impl ErrorNumber {
    pub const NO_DOMAIN: ErrorNumber = ErrorNumber(42);
    pub const NO_NETWORK: ErrorNumber = ErrorNumber(43);
    pub const NO_STORAGE_POOL: ErrorNumber = ErrorNumber(49);
    pub const NO_STORAGE_VOL: ErrorNumber = ErrorNumber(50);
    pub const OPERATION_INVALID: ErrorNumber = ErrorNumber(55);
    pub const NO_NWFILTER: ErrorNumber = ErrorNumber(62);
    pub const STORAGE_VOL_EXIST: ErrorNumber = ErrorNumber(90);
    /// Not libvirt's: its client library could not be loaded.
    pub const NOT_INSTALLED: ErrorNumber = ErrorNumber(-1);
    /// Not libvirt's: an argument cannot be passed to it (a NUL byte in a string).
    pub const INVALID_ARGUMENT: ErrorNumber = ErrorNumber(-2);
    /// Not libvirt's: see [`Error::other`].
    pub const OTHER: ErrorNumber = ErrorNumber(-3);
}

/// What a failed libvirt call said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    code: ErrorNumber,
    message: String,
}

impl Error {
    /// The calling thread's last libvirt error, which the failed call just set.
    pub(crate) fn last(api: &Api) -> Error {
        // SAFETY: both read the calling thread's error slot; the message stays valid until
        // the next libvirt call on this thread, and is copied at once.
        let (code, message) = unsafe { ((api.virGetLastErrorCode)(), (api.virGetLastErrorMessage)()) };
        let message = api::borrowed_string(message).unwrap_or_else(|| "an unknown libvirt error".to_owned());
        Error { code: ErrorNumber(code), message }
    }

    pub(crate) fn not_installed(why: &str) -> Error {
        Error {
            code: ErrorNumber::NOT_INSTALLED,
            message: format!(
                "libvirt's client library ({}) cannot be loaded ({why}): install it (Debian and Ubuntu: `apt-get \
                 install libvirt0`; Fedora: `dnf install libvirt-libs`), or use hypervisor = \"qemu\"",
                api::LIBRARY
            ),
        }
    }

    pub(crate) fn too_old(missing: &str) -> Error {
        Error {
            code: ErrorNumber::NOT_INSTALLED,
            message: format!(
                "libvirt's client library ({}) is older than sdsec needs (it lacks {missing}): install libvirt 4.5 or \
                 later, or use hypervisor = \"qemu\"",
                api::LIBRARY
            ),
        }
    }

    pub(crate) fn invalid_argument(message: &str) -> Error {
        Error { code: ErrorNumber::INVALID_ARGUMENT, message: message.to_owned() }
    }

    /// A failure around libvirt rather than in it (a thread that cannot be started).
    pub fn other(message: &str) -> Error {
        Error { code: ErrorNumber::OTHER, message: message.to_owned() }
    }

    pub fn code(&self) -> ErrorNumber {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether libvirt's client library is missing (rather than a call having failed).
    pub fn is_not_installed(&self) -> bool {
        self.code == ErrorNumber::NOT_INSTALLED
    }
}

unsafe extern "C" fn ignore(_: *mut c_void, _: *mut c_void) {}

/// Stops libvirt from printing every error on stderr, also those the caller handles (a
/// lookup of something that is gone): they reach the caller as values instead. Loads the
/// library; does nothing when it is missing (the next call says so).
pub fn silence_default_handler() {
    if let Ok(api) = api::api() {
        // SAFETY: `ignore` matches `virErrorFunc` and touches nothing.
        unsafe { (api.virSetErrorFunc)(std::ptr::null_mut(), Some(ignore)) }
    }
}

/// Checks a call's `int` result: negative is a failure.
pub(crate) fn check(api: &Api, result: i32) -> Result<i32, Error> {
    if result < 0 { Err(Error::last(api)) } else { Ok(result) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_says_what_to_install_and_what_else_works() {
        let e = Error::not_installed("libvirt.so.0: cannot open shared object file");
        assert!(e.is_not_installed());
        for part in ["libvirt.so.0", "apt-get install libvirt0", "hypervisor = \"qemu\"", "cannot open shared object"] {
            assert!(e.message().contains(part), "{part} in {e}");
        }
    }

    #[test]
    fn strings_with_a_nul_byte_are_refused_before_reaching_libvirt() {
        let e = api::c_string("a\0b").unwrap_err();
        assert_eq!(e.code(), ErrorNumber::INVALID_ARGUMENT);
        assert!(api::c_string_opt(None).unwrap().is_none());
    }
}
