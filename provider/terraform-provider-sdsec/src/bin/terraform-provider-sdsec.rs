//! The Terraform/OpenTofu plugin. Terraform starts it; run by hand it explains how to use it.

use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    tfplugin::serve::run(Arc::new(sdsec_provider::SdsecProvider::new()), tfplugin::ServeOptions::new("sdsec/sdsec"))
}
