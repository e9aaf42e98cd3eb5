//! Refresh and import: a running instance as [`engine::instance`] finds it, with the
//! control messages its runtime refused reported once each, and drift of the host's network
//! (restored by the refresh) reported as it is found.

use std::path::Path;

use engine::instance::{self, InstanceError};
use hypervisor::{HypervisorError, InstanceId};
use tfplugin::{Diagnostic, Diagnostics, StateResult, Value};

use super::model::Model;
use super::private;
use crate::provider::Shared;
use crate::resources::error::{Error, blocking};
use crate::resources::image::{ImageModel, failed};

/// Refresh: the state as the hypervisor and the store see it now; null when the instance
/// is gone. Warns about control messages refused since the last refresh, and about the
/// host's network rules when they had drifted from the leases.
pub async fn read(shared: &Shared, current: Value, private: Vec<u8>) -> Result<StateResult, Diagnostics> {
    let config = shared.config()?;
    // A remote site's leases are kept beside the local bridge's, one directory per site.
    let leases = match config.remote_libvirt() {
        true => config.state_dir.join("network").join("sites"),
        false => config.state_dir.join("network").join("leases.json"),
    };
    let mut model = Model::decode(&current).map_err(Diagnostic::from)?;
    let Some(id) = model.instance_id() else { return Ok(StateResult::new(Value::Null)) };
    let instance_id = id.clone();
    let name = model.name.known().cloned().unwrap_or_default();
    let image_digest = model.image_digest.known().cloned();
    let refreshed = blocking(move || instance::refresh(&config, &id, image_digest.as_deref()).map_err(failed)).await?;
    // Gone outside Terraform: the next plan creates it anew.
    let Some(refreshed) = refreshed else { return Ok(StateResult::new(Value::Null)) };
    model.refreshed(&refreshed);
    let refused = refreshed.refused;
    let (reported, private) = private::refused_reported(&private, refused);
    let mut result = StateResult { private, ..StateResult::new(model.encode()) };
    if refused > reported {
        result.diagnostics.push(Diagnostic::warning(
            format!("Unikernel `{name}` refused {} control message(s)", refused - reported),
            format!(
                "Its runtime refused reconfiguration requests that were not authenticated by the instance's key, \
                 replayed, or malformed, and kept its plan. Someone with access to its control socket tried to \
                 reconfigure it: see the `control_refused` lines in {}.",
                refreshed.event_log
            ),
        ));
    }
    if !refreshed.network_drift.is_empty() {
        let detail = drift_detail(&name, &instance_id, &refreshed.network_drift, refreshed.network_lost, &leases);
        result.diagnostics.push(Diagnostic::warning("Host network rules had drifted", detail));
    }
    Ok(result)
}

/// What the drift warning says: each difference found, that the leases restored them, and
/// when this instance's TAP is gone, that it must be replaced.
fn drift_detail(name: &str, id: &InstanceId, drift: &[String], lost: bool, leases: &Path) -> String {
    let mut detail = format!(
        "Refreshing unikernel `{name}`, sdsec found the bridge networking changed behind its back (on this host a \
         firewall reload, `nft flush ruleset`, or `ip`/`nft` commands; on a remote libvirt host `virsh net-*` or \
         `nwfilter-*` commands), so guests may not have been kept apart or published as their policies say:\n"
    );
    for sentence in drift {
        detail.push_str(&format!("  - {sentence}\n"));
    }
    detail.push_str(&format!("It restored what it could from the leases in {}.", leases.display()));
    if lost {
        detail.push_str(&format!(
            " A TAP cannot be given back to a running VM: unikernel `{name}` ({id}) has lost its network interface \
             and should be replaced with `terraform apply -replace=ADDRESS`, ADDRESS being this sdsec_unikernel's \
             resource address (as `terraform state list` shows it)."
        ));
    }
    detail
}

/// Import: the state an instance recorded when it was booted, and its private state.
pub async fn import(shared: &Shared, id: &str) -> Result<StateResult, Diagnostics> {
    let config = shared.config()?;
    let Ok(id) = id.parse::<InstanceId>() else {
        return Err(Error::new(
            "Invalid instance id",
            format!("`{id}` is not an instance id: `i-` and 16 hex digits, as `instance_id`."),
        )
        .into());
    };
    let (state, private) = blocking(move || -> Result<_, Error> {
        let (instance, metadata) = instance::recorded(&config, &id).map_err(|e| match e {
            InstanceError::Lookup(HypervisorError::NoSuchInstance(_)) => Error::new(
                "Unikernel not found",
                format!("No instance {id} in this provider's state directory; check `state_dir` and the id."),
            ),
            other => failed(other),
        })?;
        let metadata = metadata.ok_or_else(|| {
            Error::new(
                "Not a Terraform-managed instance",
                format!(
                    "Instance {id} was not started by sdsec_unikernel (it has no configuration record); stop it \
                     with `sdsec stop {id}`."
                ),
            )
        })?;
        let private = metadata.image_plan().map(|plan| private::new(&plan)).unwrap_or_default();
        let reach = engine::network::reach(&config.network, &instance, metadata.host_port);
        Ok((Model::imported(&instance, &metadata, &reach).encode(), private))
    })
    .await?;
    Ok(StateResult { private, ..StateResult::new(state) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_is_listed_and_a_lost_interface_asks_for_replacement() {
        let id: InstanceId = "i-0123456789abcdef".parse().unwrap();
        let leases = Path::new("/var/lib/sdsec/network/leases.json");
        let drift = ["table inet sdsec_sdsec0 is missing".to_owned(), "bridge sdsec0 is down".to_owned()];
        let detail = drift_detail("web", &id, &drift, false, leases);
        assert!(detail.contains("\n  - table inet sdsec_sdsec0 is missing\n  - bridge sdsec0 is down\n"), "{detail}");
        assert!(detail.ends_with("restored what it could from the leases in /var/lib/sdsec/network/leases.json."));
        assert!(!detail.contains("-replace"), "{detail}");
        let detail = drift_detail("web", &id, &drift, true, leases);
        assert!(detail.contains("unikernel `web` (i-0123456789abcdef) has lost its network interface"), "{detail}");
        assert!(detail.contains("`terraform apply -replace=ADDRESS`"), "{detail}");
    }
}
