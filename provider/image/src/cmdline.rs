//! The kernel command line baked into an image: the plan's kernel parameters and the
//! runtime's launch settings, encoded by [`abi::cmdline`], the contract init decodes.
//!
//! Settings that depend on the host (such as `tsc_early_khz` under TCG) are added by the
//! hypervisor backend at boot and are not part of the image.

use abi::cmdline::Launch;
use plan::EnforcementPlan;

pub use abi::cmdline::CmdlineError;

/// The whole command line of an image of `plan` whose application `app_name` listens on
/// `port`.
pub fn kernel_cmdline(
    plan: &EnforcementPlan,
    app_name: &str,
    args: &[String],
    port: u16,
) -> Result<String, CmdlineError> {
    Launch::new(app_name, args, port).encode(&plan.build.kernel_cmdline, plan.build.hardening.read_only_root)
}
