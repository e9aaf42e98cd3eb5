//! The Terraform/OpenTofu plugin. Terraform starts it; run by hand it explains how to use it.

use std::process::ExitCode;
use std::sync::Arc;

// Compiling allocates many small values; mimalloc makes that markedly cheaper than glibc's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tfplugin::serve::run(Arc::new(sdsec_provider::SdsecProvider::new()), tfplugin::ServeOptions::new("sdsec/sdsec"))
}
