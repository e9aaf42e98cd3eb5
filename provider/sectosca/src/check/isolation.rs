//! Isolation policies against the hosts their targets run on: trust, tenants, and whether
//! the host is the target's alone.

use super::{Checked, PolicyProperties};
use crate::diagnostic::{Code, Sink};
use crate::model::Trust;

pub(super) fn check_isolation(checked: &Checked, sink: &mut Sink<'_>) {
    for policy in &checked.policies {
        let PolicyProperties::Isolation(iso) = &policy.properties else { continue };
        for target in &policy.targets {
            let Some(host_name) = checked.unikernels.get(target).and_then(|u| u.host.as_ref()) else { continue };
            let Some(host) = checked.hypervisors.get(host_name) else { continue };
            let host_trust = host.trust.unwrap_or(Trust::Shared);
            if let Some(min) = &iso.min_trust
                && host_trust < min.value
            {
                sink.report(
                    Code::TrustTooLow,
                    min.span,
                    &min.path,
                    format!(
                        "`{target}` runs on `{host_name}`, whose trust is `{host_trust}`, below min_trust `{}`",
                        min.value
                    ),
                )
                .hint =
                    Some(format!("place `{target}` on a host declared at least `{}`, or lower min_trust", min.value));
            }
            if let Some(tenants) = &iso.tenants {
                let allowed = host.tenant.as_ref().is_some_and(|t| tenants.value.contains(t));
                if !allowed {
                    let host_tenant = host
                        .tenant
                        .as_deref()
                        .map_or("no tenant (shared by any)".to_owned(), |t| format!("tenant `{t}`"));
                    sink.report(
                        Code::TenantNotAllowed,
                        tenants.span,
                        &tenants.path,
                        format!(
                            "`{target}` runs on `{host_name}`, which declares {host_tenant}, not one of: {}",
                            tenants.value.join(", ")
                        ),
                    )
                    .hint =
                        Some(format!("place `{target}` on a host of one of these tenants, or allow the host's tenant"));
                }
            }
            if iso.dedicated_host.as_ref().is_some_and(|d| d.value) {
                let neighbours: Vec<&str> = checked
                    .unikernels
                    .iter()
                    .filter(|(n, u)| *n != target && u.host.as_ref() == Some(host_name))
                    .map(|(n, _)| n.as_str())
                    .collect();
                if let (false, Some(flag)) = (neighbours.is_empty(), &iso.dedicated_host) {
                    sink.report(
                        Code::HostNotDedicated,
                        flag.span,
                        &flag.path,
                        format!(
                            "`{target}` needs a dedicated host, but `{host_name}` also runs {}",
                            neighbours.join(", ")
                        ),
                    )
                    .hint = Some(format!("give `{target}` a host of its own"));
                }
            }
        }
    }
}
