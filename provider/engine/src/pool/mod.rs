//! Pools of warm protected instances, kept by `sdsec_pool` and drawn from by
//! `sdsec_unikernel`. A pool's ledger lives under the state directory:
//!
//! ```text
//! <state_dir>/pools/<pool id>/pool.json   what the pool holds (rewritten whole, by rename)
//!                             lock        held while the ledger is read and changed
//! ```
//!
//! Every change happens under the lock, so two applies never take the same member. A
//! taken member leaves the ledger before it is handed over; from then on it is the taker's.
//! Keeping the members (fill, refresh, drain) is in [`members`]; a pool's whole life
//! (create, refresh, update, destroy) in [`lifecycle`].

mod lifecycle;
mod members;

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use fsutil::{IoError, io};
use serde::{Deserialize, Serialize};

pub use self::lifecycle::{PoolSpec, Refreshed, create, destroy, refresh, update};
pub use self::members::MembersError;
use crate::Input;

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("{0}; check the state directory's permissions")]
    Io(#[from] IoError),
    #[error(transparent)]
    Random(#[from] fsutil::RandomError),
    #[error("the pool ledger {path} is unreadable ({reason}); destroy and re-create the pool")]
    Corrupt { path: PathBuf, reason: String },
    #[error("no pool {0} in this provider's state directory; check `pool` and the provider's `state_dir`")]
    NotFound(String),
    #[error("pool = {0:?} is not a pool id (`pool-` and 12 hex digits, as sdsec_pool's `id` reads)")]
    BadId(String),
    #[error("cannot take pool member {member}: {source}")]
    Claim { member: String, source: hypervisor::HypervisorError },
}

impl PoolError {
    /// Unknown or broken pools are the pool's fault; the rest is the state directory's.
    pub fn input(&self) -> Option<Input> {
        match self {
            PoolError::NotFound(_) | PoolError::Corrupt { .. } | PoolError::BadId(_) => Some(Input::Pool),
            PoolError::Io(_) | PoolError::Random(_) | PoolError::Claim { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Warm {
    /// Images built and verified in the store; taking one boots it.
    Image,
    /// Instances booted to readiness and paused; taking one resumes it.
    Paused,
    /// The image booted once to readiness and saved; taking a member starts a copy of that
    /// snapshot, made its own (key, randomness, clock, address) before it serves.
    Snapshot,
}

impl Warm {
    /// Every mode's name, as configurations write it.
    pub const NAMES: &'static [&'static str] = &[Warm::Image.as_str(), Warm::Paused.as_str(), Warm::Snapshot.as_str()];

    pub fn parse(text: &str) -> Option<Warm> {
        match text {
            "image" => Some(Warm::Image),
            "paused" => Some(Warm::Paused),
            "snapshot" => Some(Warm::Snapshot),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Warm::Image => "image",
            Warm::Paused => "paused",
            Warm::Snapshot => "snapshot",
        }
    }

    /// Whether members are slots (`m-…`) rather than instances.
    pub const fn slots(self) -> bool {
        matches!(self, Warm::Image | Warm::Snapshot)
    }
}

/// What a pool holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    pub id: String,
    pub warm: Warm,
    pub image_digest: String,
    /// The plan the image was built with (canonical JSON).
    pub image_plan: String,
    /// Member ids: instance ids of paused members, `m-…` slots of image members.
    pub members: Vec<String>,
}

/// The pools under one state directory.
#[derive(Debug, Clone)]
pub struct Pools {
    root: PathBuf,
}

/// The exclusive lock of one pool's ledger, released when dropped.
#[derive(Debug)]
pub struct Locked {
    _file: File,
    path: PathBuf,
}

/// Refuses anything but a pool id (`pool-` and 12 lower-case hex digits): ids come from the
/// configuration and become paths under the state directory.
pub fn check_id(id: &str) -> Result<(), PoolError> {
    let digits = id.strip_prefix("pool-").unwrap_or_default();
    let valid = digits.len() == 12 && digits.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if valid { Ok(()) } else { Err(PoolError::BadId(id.to_owned())) }
}

impl Pools {
    pub fn new(state_dir: &Path) -> Pools {
        Pools { root: state_dir.join("pools") }
    }

    /// The pool's directory; refused unless `id` is a pool id, as ids come from the
    /// configuration and become paths under the state directory.
    fn dir(&self, id: &str) -> Result<PathBuf, PoolError> {
        check_id(id)?;
        Ok(self.root.join(id))
    }

    /// A new pool id: `pool-` and 12 hex digits.
    pub fn new_id() -> Result<String, PoolError> {
        Ok(fsutil::random_id("pool-", 6)?)
    }

    /// Waits for the pool's lock (creating the pool's directory when `create`).
    pub fn lock(&self, id: &str, create: bool) -> Result<Locked, PoolError> {
        let dir = self.dir(id)?;
        if create {
            fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        } else if !dir.is_dir() {
            return Err(PoolError::NotFound(id.to_owned()));
        }
        let path = dir.join("lock");
        let file = File::options().create(true).truncate(false).write(true).open(&path).map_err(io("open", &path))?;
        file.lock().map_err(io("lock", &path))?;
        Ok(Locked { _file: file, path: dir.join("pool.json") })
    }

    /// Removes a pool's ledger (its members must be gone already).
    pub fn remove(&self, id: &str) -> Result<(), PoolError> {
        let dir = self.dir(id)?;
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", &dir)(e).into()),
            _ => Ok(()),
        }
    }

    /// Every pool's ledger (for `images gc`, which keeps the images pools hold).
    pub fn all(&self) -> Vec<Ledger> {
        let Ok(entries) = fs::read_dir(&self.root) else { return Vec::new() };
        entries
            .flatten()
            .filter_map(|e| fs::read_to_string(e.path().join("pool.json")).ok())
            .filter_map(|text| serde_json::from_str(&text).ok())
            .collect()
    }
}

impl Locked {
    /// `None` before the first save.
    pub fn load(&self) -> Result<Option<Ledger>, PoolError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("read", &self.path)(e).into()),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| PoolError::Corrupt { path: self.path.clone(), reason: e.to_string() })
    }

    /// Written atomically: a reader sees the old ledger or the new.
    pub fn save(&self, ledger: &Ledger) -> Result<(), PoolError> {
        Ok(fsutil::write_json_atomically(&self.path, ledger)?)
    }
}

/// A member handed over to a unikernel.
#[derive(Debug)]
pub enum Taken {
    /// A paused instance, now the taker's to resume.
    Paused { instance: hypervisor::InstanceId, image_plan: ::plan::EnforcementPlan },
    /// A slot of a pool of pre-built images: boot the image built with `image_plan`.
    Image { image_plan: ::plan::EnforcementPlan },
    /// A slot of a pool of snapshots: start a copy of the snapshot of the image built with
    /// `image_plan`.
    Snapshot { image_plan: ::plan::EnforcementPlan },
}

/// Takes a member of pool `id` whose image is `digest`, if one is ready. Under the pool's
/// lock, so no member is ever taken twice. A paused member is `claim`ed (recorded as being
/// created by the taker) before it leaves the ledger, so that it is never untracked: should
/// the taker die before completing it, it is an orphan.
pub fn take(
    state_dir: &Path,
    id: &str,
    digest: &str,
    claim: impl FnOnce(&hypervisor::InstanceId) -> Result<(), hypervisor::HypervisorError>,
) -> Result<Option<Taken>, PoolError> {
    let locked = Pools::new(state_dir).lock(id, false)?;
    let Some(mut ledger) = locked.load()? else { return Ok(None) };
    if ledger.image_digest != digest || ledger.members.is_empty() {
        return Ok(None);
    }
    let image_plan: ::plan::EnforcementPlan = serde_json::from_str(&ledger.image_plan)
        .map_err(|e| PoolError::Corrupt { path: locked.path.clone(), reason: e.to_string() })?;
    let member = ledger.members.remove(0);
    let taken = match ledger.warm {
        Warm::Image => Taken::Image { image_plan },
        Warm::Snapshot => Taken::Snapshot { image_plan },
        Warm::Paused => {
            let instance = member.parse().map_err(|reason| PoolError::Corrupt { path: locked.path.clone(), reason })?;
            claim(&instance).map_err(|source| PoolError::Claim { member: member.clone(), source })?;
            Taken::Paused { instance, image_plan }
        }
    };
    locked.save(&ledger)?;
    Ok(Some(taken))
}

/// The ledger of pool `id`, read under its lock (`None` for an unknown pool).
pub fn ledger(state_dir: &Path, id: &str) -> Option<Ledger> {
    Pools::new(state_dir).lock(id, false).ok()?.load().ok()?
}

/// Pool `id`'s image and the plan it was built with.
pub fn image(state_dir: &Path, id: &str) -> Option<(String, ::plan::EnforcementPlan)> {
    let ledger = ledger(state_dir, id)?;
    serde_json::from_str(&ledger.image_plan).ok().map(|plan| (ledger.image_digest, plan))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_json() -> String {
        let doc = "tosca_definitions_version: tosca_simple_yaml_1_3\ntopology_template:\n  node_templates:\n    api: { type: sdsec.nodes.Unikernel }\n";
        sectosca::compile_str("t", doc).plan_json("api").unwrap()
    }

    #[test]
    fn concurrent_takers_never_get_the_same_member() {
        let state = tempfile::tempdir().unwrap();
        let pools = Pools::new(state.path());
        let id = Pools::new_id().unwrap();
        let unknown = take(state.path(), &id, "sha256:00", |_| Ok(())).unwrap_err();
        assert!(matches!(unknown, PoolError::NotFound(_)) && unknown.input() == Some(Input::Pool));
        let ledger = Ledger {
            id: id.clone(),
            warm: Warm::Paused,
            image_digest: "sha256:00".into(),
            image_plan: plan_json(),
            members: vec!["i-0000000000000001".into(), "i-0000000000000002".into()],
        };
        pools.lock(&id, true).unwrap().save(&ledger).unwrap();
        assert!(
            take(state.path(), &id, "sha256:ff", |_| Ok(())).unwrap().is_none(),
            "another image is never handed out"
        );
        let taken: Vec<String> = std::thread::scope(|scope| {
            let takers: Vec<_> =
                (0..2).map(|_| scope.spawn(|| take(state.path(), &id, "sha256:00", |_| Ok(())))).collect();
            takers
                .into_iter()
                .map(|t| match t.join().unwrap().unwrap() {
                    Some(Taken::Paused { instance, .. }) => instance.as_str().to_owned(),
                    other => panic!("{other:?}"),
                })
                .collect()
        });
        assert_ne!(taken[0], taken[1]);
        assert!(take(state.path(), &id, "sha256:00", |_| Ok(())).unwrap().is_none(), "an empty pool hands out nothing");
        assert_eq!(super::ledger(state.path(), &id).unwrap().members, Vec::<String>::new());
        assert_eq!(pools.all().len(), 1);
        pools.remove(&id).unwrap();
        assert!(pools.all().is_empty());
    }

    #[test]
    fn pool_ids_that_are_not_ids_never_become_paths() {
        let state = tempfile::tempdir().unwrap();
        let pools = Pools::new(state.path());
        for bad in ["../../etc", "pool-0123456789ab/../../x", "pool-0123456789AB", "pool-", "", "/tmp"] {
            let err = pools.lock(bad, true).unwrap_err();
            assert!(matches!(err, PoolError::BadId(_)) && err.input() == Some(Input::Pool), "{bad}: {err}");
            assert!(err.to_string().starts_with("pool = "), "the message names the attribute: {err}");
            assert!(matches!(take(state.path(), bad, "sha256:00", |_| Ok(())), Err(PoolError::BadId(_))));
            assert!(pools.remove(bad).is_err());
        }
        assert!(std::fs::read_dir(state.path()).unwrap().next().is_none(), "nothing was created");
        assert!(pools.lock(&Pools::new_id().unwrap(), true).is_ok());
    }

    #[test]
    fn a_paused_member_is_claimed_before_it_leaves_the_ledger() {
        let state = tempfile::tempdir().unwrap();
        let id = Pools::new_id().unwrap();
        let ledger = Ledger {
            id: id.clone(),
            warm: Warm::Paused,
            image_digest: "sha256:00".into(),
            image_plan: plan_json(),
            members: vec!["i-0000000000000001".into()],
        };
        Pools::new(state.path()).lock(&id, true).unwrap().save(&ledger).unwrap();
        let refused = |_: &hypervisor::InstanceId| {
            Err(hypervisor::HypervisorError::NoSuchInstance("i-0000000000000001".parse().unwrap()))
        };
        assert!(matches!(take(state.path(), &id, "sha256:00", refused), Err(PoolError::Claim { .. })));
        assert_eq!(super::ledger(state.path(), &id).unwrap().members.len(), 1, "an unclaimed member stays");
        let claimed = std::cell::Cell::new(None);
        let taken = take(state.path(), &id, "sha256:00", |member| {
            claimed.set(Some(member.clone()));
            Ok(())
        });
        assert!(matches!(taken, Ok(Some(Taken::Paused { .. }))));
        assert_eq!(claimed.take().unwrap().as_str(), "i-0000000000000001");
    }
}
