use std::sync::Mutex;

use hypervisor::{Accel, ControlEndpoint, Creator, InstanceState};
use network::ModeChoice;

use super::*;

/// A hypervisor that lists the given records and remembers what it was asked to stop.
#[derive(Debug)]
struct Recorded {
    instances: Vec<Instance>,
    stopped: Mutex<Vec<InstanceId>>,
}

impl Hypervisor for Recorded {
    fn boot(&self, _: &BootSpec) -> hypervisor::Result<Instance> {
        Err(HypervisorError::QemuFailed { stderr: "these tests boot nothing".into() })
    }
    fn state(&self, _: &InstanceId) -> hypervisor::Result<InstanceState> {
        Ok(InstanceState::Running)
    }
    fn instance(&self, id: &InstanceId) -> hypervisor::Result<Instance> {
        self.instances.iter().find(|i| i.id == *id).cloned().ok_or(HypervisorError::NoSuchInstance(id.clone()))
    }
    fn list(&self) -> hypervisor::Result<Vec<(Instance, InstanceState)>> {
        Ok(self.instances.iter().map(|i| (i.clone(), InstanceState::Running)).collect())
    }
    fn pause(&self, _: &InstanceId) -> hypervisor::Result<()> {
        Ok(())
    }
    fn resume(&self, _: &InstanceId) -> hypervisor::Result<()> {
        Ok(())
    }
    fn stop(&self, id: &InstanceId, _: Duration) -> hypervisor::Result<()> {
        self.stopped.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(id.clone());
        Ok(())
    }
    fn log(&self, id: &InstanceId, _: hypervisor::LogKind) -> hypervisor::Result<Box<dyn hypervisor::LogFile>> {
        Err(HypervisorError::NoSuchInstance(id.clone()))
    }
    fn set_metadata(&self, _: &InstanceId, _: serde_json::Value) -> hypervisor::Result<()> {
        Ok(())
    }
    fn set_creator(&self, _: &InstanceId, _: Option<Creator>) -> hypervisor::Result<()> {
        Ok(())
    }
    fn control(&self, id: &InstanceId) -> hypervisor::Result<ControlEndpoint> {
        Err(HypervisorError::NoControl(id.clone()))
    }
    fn save(&self, _: &InstanceId, _: &std::path::Path) -> hypervisor::Result<()> {
        Err(HypervisorError::SnapshotUnsupported("recorded"))
    }
    fn snapshot_compat(&self) -> hypervisor::Result<String> {
        Err(HypervisorError::SnapshotUnsupported("recorded"))
    }
}

fn instance(digit: char, creator: Option<Creator>) -> Instance {
    Instance {
        id: format!("i-{}", digit.to_string().repeat(16)).parse().unwrap(),
        name: "api".into(),
        image_digest: "sha256:00".into(),
        endpoint: "127.0.0.1:18080".parse().unwrap(),
        accel: Accel::Tcg,
        boot_ms: 0,
        console_log: PathBuf::new(),
        audit_log: None,
        bridged: None,
        creator,
        memory_mb: 128,
        vcpus: 1,
        started_at_ms: 0,
        metadata: serde_json::Value::Null,
    }
}

#[test]
fn only_instances_whose_creator_died_before_completing_them_are_swept() {
    let state = tempfile::tempdir().unwrap();
    let mut config = ProviderConfig::new(state.path().to_owned());
    config.network.choice = ModeChoice::User;
    let me = Creator::this_process();
    let mut exited = std::process::Command::new("true").spawn().unwrap();
    let gone = Creator { pid: exited.id(), ..me };
    exited.wait().unwrap();
    let recycled = Creator { start_time: me.start_time + 1, ..me };
    let instances =
        vec![instance('1', None), instance('2', Some(me)), instance('3', Some(gone)), instance('4', Some(recycled))];
    let backend = Recorded { instances, stopped: Mutex::new(Vec::new()) };
    let host = Host::new(Box::new(backend), &config);
    let swept = host.sweep_orphans().unwrap();
    let ids: Vec<&str> = swept.iter().map(InstanceId::as_str).collect();
    assert_eq!(ids, ["i-3333333333333333", "i-4444444444444444"], "complete and live-created instances stay");
    host.check(None).unwrap();
}
