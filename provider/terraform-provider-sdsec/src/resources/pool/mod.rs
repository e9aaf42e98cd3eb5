//! `sdsec_pool`: warm protected instances of one plan and application. Plan computes the
//! image digest and shows the gap between `ready` and `size`; create and update build the
//! image and fill the pool; read drops members that died, were taken or whose image no
//! longer verifies; delete stops every member. The ledger ([`crate::pool`]) is changed
//! under the pool's lock only.

mod members;
mod schema;

use std::sync::Arc;

use tfplugin::{
    ApplyRequest, AttributePath, Diagnostic, Diagnostics, PlanRequest, PlanResult, Resource, Schema, StateResult, Value,
};

use crate::config::ProviderConfig;
use crate::pool::{Ledger, Pools, Warm};
use crate::provider::Shared;
use crate::resources::unikernel::desired::{self, DEFAULT_CREATE_TIMEOUT, Desired};
use crate::resources::unikernel::{blocking_error, error, keep_image, manifest, pool_image};
use crate::values::string;

pub use schema::schema;

pub const TYPE_NAME: &str = "sdsec_pool";

#[derive(Debug)]
pub struct Pool {
    shared: Arc<Shared>,
}

impl Pool {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

/// What a pool's configuration asks for.
#[derive(Debug, Clone)]
struct PoolDesired {
    unikernel: Desired,
    size: usize,
    warm: Warm,
}

fn read_desired(value: &Value, diags: &mut Diagnostics) -> Option<PoolDesired> {
    let mut unikernel = desired::read(value, diags)?;
    unikernel.name = string(value, "name").unwrap_or_else(|| "pool".into());
    let size = value.get("size").and_then(Value::as_number).and_then(|n| n.as_i64())?;
    let warm = string(value, "warm").and_then(|w| Warm::parse(&w))?;
    Some(PoolDesired { unikernel, size: usize::try_from(size).ok()?, warm })
}

fn members_value(ledger: &Ledger) -> Value {
    Value::List(ledger.members.iter().map(|m| Value::from(m.as_str())).collect())
}

fn record(state: &mut Value, ledger: &Ledger) {
    state.set("id", Value::from(ledger.id.as_str()));
    state.set("image_digest", Value::from(ledger.image_digest.as_str()));
    state.set("ready", Value::from(ledger.members.len() as i64));
    state.set("members", members_value(ledger));
}

#[tfplugin::async_trait]
impl Resource for Pool {
    fn type_name(&self) -> &str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        schema()
    }

    async fn validate(&self, config: &Value) -> Diagnostics {
        let mut diags = Diagnostics::new();
        desired::timeout(config, "create", DEFAULT_CREATE_TIMEOUT, &mut diags);
        let _ = read_desired(config, &mut diags);
        diags
    }

    async fn plan(&self, request: PlanRequest) -> PlanResult {
        let prior = request.prior_state.clone();
        let mut result = request.into_result();
        let config = match self.shared.config() {
            Ok(config) => config,
            Err(diags) => {
                result.diagnostics = diags;
                return result;
            }
        };
        let mut diags = Diagnostics::new();
        let Some(desired) = read_desired(&result.planned_state, &mut diags) else {
            for attribute in ["id", "image_digest", "ready", "members", "memory_mb", "vcpus"] {
                if attribute != "id" || prior.is_null() {
                    result.planned_state.set(attribute, Value::unknown());
                }
            }
            result.diagnostics = diags;
            return result;
        };
        for violation in crate::placement::violations(&desired.unikernel.plan, &config) {
            diags.attribute_error(AttributePath::attr("enforcement"), "Placement requirement not met", violation);
        }
        if diags.has_errors() {
            result.diagnostics = diags;
            return result;
        }
        let pool_id = string(&prior, "id");
        let computed = tokio::task::spawn_blocking({
            let (desired, config) = (desired.clone(), config.clone());
            move || planned_digest(&desired.unikernel, &config, pool_id.as_deref())
        })
        .await
        .map_err(blocking_error)
        .and_then(|r| r);
        let digest = match computed {
            Ok(digest) => digest,
            Err(diags) => {
                result.diagnostics = diags;
                return result;
            }
        };
        let planned = &mut result.planned_state;
        let build = &desired.unikernel.plan.build;
        planned.set("memory_mb", Value::from(desired.unikernel.memory_mb.unwrap_or(build.memory_mb) as i64));
        planned.set("vcpus", Value::from(desired.unikernel.vcpus.unwrap_or(build.vcpus) as i64));
        planned.set("ready", Value::from(desired.size as i64));
        let unchanged = string(&prior, "image_digest").as_deref() == Some(digest.as_str())
            && prior.get("ready").and_then(Value::as_number).and_then(|n| n.as_i64()) == Some(desired.size as i64);
        if !unchanged {
            planned.set("members", Value::unknown());
        }
        planned.set("image_digest", Value::from(digest));
        if prior.is_null() {
            planned.set("id", Value::unknown());
        }
        result.diagnostics = diags;
        result
    }

    async fn create(&self, request: ApplyRequest) -> StateResult {
        let config = match self.shared.config() {
            Ok(config) => config,
            Err(diags) => return StateResult::failed(Value::Null, diags),
        };
        let mut diags = Diagnostics::new();
        let planned = request.planned_state;
        let timeout = desired::timeout(&planned, "create", DEFAULT_CREATE_TIMEOUT, &mut diags);
        let Some(desired) = read_desired(&planned, &mut diags) else {
            diags.push(Diagnostic::error("Pool not known", "The configuration is still unknown at apply."));
            return StateResult::failed(Value::Null, diags);
        };
        let filled = tokio::task::spawn_blocking(move || -> Result<Ledger, Diagnostics> {
            let pools = Pools::new(&config.state_dir);
            let id = Pools::new_id().map_err(|e| error("Cannot create the pool", e))?;
            let locked = pools.lock(&id, true).map_err(|e| error("Cannot create the pool", e))?;
            let mut ledger = Ledger {
                id: id.clone(),
                warm: desired.warm,
                image_digest: String::new(),
                image_plan: desired.unikernel.plan.canonical_json(),
                members: Vec::new(),
            };
            if let Err(e) = members::fill(&config, &locked, &mut ledger, &desired.unikernel, desired.size, timeout) {
                // Nothing half-made stays: no member, no ledger.
                let _ = members::drain(&config, &locked, &mut ledger);
                drop(locked);
                let _ = pools.remove(&id);
                return Err(e);
            }
            Ok(ledger)
        })
        .await
        .map_err(blocking_error)
        .and_then(|r| r);
        match filled {
            Ok(ledger) => {
                let mut state = planned;
                record(&mut state, &ledger);
                StateResult { diagnostics: diags, ..StateResult::new(state) }
            }
            Err(mut errors) => {
                errors.extend(diags);
                StateResult::failed(Value::Null, errors)
            }
        }
    }

    async fn read(&self, current_state: Value, private: Vec<u8>) -> StateResult {
        let config = match self.shared.config() {
            Ok(config) => config,
            Err(diags) => return StateResult::failed(current_state, diags),
        };
        let Some(id) = string(&current_state, "id") else { return StateResult::new(Value::Null) };
        let current = current_state.clone();
        let refreshed = tokio::task::spawn_blocking(move || -> Result<Value, Diagnostics> {
            let Ok(locked) = Pools::new(&config.state_dir).lock(&id, false) else { return Ok(Value::Null) };
            let Some(mut ledger) = locked.load().map_err(|e| error("Cannot read the pool", e))? else {
                return Ok(Value::Null);
            };
            members::refresh(&config, &locked, &mut ledger)?;
            let mut state = current;
            record(&mut state, &ledger);
            Ok(state)
        })
        .await
        .map_err(blocking_error)
        .and_then(|r| r);
        match refreshed {
            Ok(state) => StateResult { private, ..StateResult::new(state) },
            Err(diags) => StateResult::failed(current_state, diags),
        }
    }

    async fn update(&self, request: ApplyRequest) -> StateResult {
        let prior = request.prior_state.clone();
        let config = match self.shared.config() {
            Ok(config) => config,
            Err(diags) => return StateResult::failed(prior, diags),
        };
        let mut diags = Diagnostics::new();
        let planned = request.planned_state;
        let timeout = desired::timeout(&planned, "create", DEFAULT_CREATE_TIMEOUT, &mut diags);
        let (Some(desired), Some(id)) = (read_desired(&planned, &mut diags), string(&prior, "id")) else {
            diags.push(Diagnostic::error("Pool not known", "The configuration is still unknown at apply."));
            return StateResult::failed(prior, diags);
        };
        let digest = string(&planned, "image_digest").unwrap_or_default();
        let updated = tokio::task::spawn_blocking(move || -> (Option<Ledger>, Diagnostics) {
            let locked = match Pools::new(&config.state_dir).lock(&id, false) {
                Ok(locked) => locked,
                Err(e) => return (None, error("Pool unavailable", e)),
            };
            let mut ledger = match locked.load() {
                Ok(Some(ledger)) => ledger,
                Ok(None) => return (None, error("Pool unavailable", format!("Pool {id} has no ledger."))),
                Err(e) => return (None, error("Pool unavailable", e)),
            };
            if ledger.image_digest != digest {
                // The image changes: members of the old one cannot serve the new plan.
                if let Err(e) = members::drain(&config, &locked, &mut ledger) {
                    return (Some(ledger), e);
                }
                ledger.image_plan = desired.unikernel.plan.canonical_json();
            }
            let filled = members::fill(&config, &locked, &mut ledger, &desired.unikernel, desired.size, timeout);
            (Some(ledger), filled.err().unwrap_or_default())
        })
        .await;
        let (ledger, errors) = match updated {
            Ok(pair) => pair,
            Err(e) => (None, blocking_error(e)),
        };
        diags.extend(errors);
        let mut state = if diags.has_errors() { prior } else { planned };
        if let Some(ledger) = &ledger {
            record(&mut state, ledger);
        }
        StateResult { diagnostics: diags, ..StateResult::new(state) }
    }

    async fn delete(&self, request: ApplyRequest) -> Diagnostics {
        let config = match self.shared.config() {
            Ok(config) => config,
            Err(diags) => return diags,
        };
        let Some(id) = string(&request.prior_state, "id") else { return Diagnostics::new() };
        tokio::task::spawn_blocking(move || -> Diagnostics {
            let pools = Pools::new(&config.state_dir);
            let Ok(locked) = pools.lock(&id, false) else { return Diagnostics::new() };
            if let Ok(Some(mut ledger)) = locked.load()
                && let Err(e) = members::drain(&config, &locked, &mut ledger)
            {
                return e;
            }
            drop(locked);
            pools.remove(&id).map_err(|e| error("Cannot remove the pool", e)).err().unwrap_or_default()
        })
        .await
        .unwrap_or_else(blocking_error)
    }
}

/// The members' image: the pool's current one while it can serve the new plan in place,
/// else the image of the new plan.
fn planned_digest(desired: &Desired, config: &ProviderConfig, pool_id: Option<&str>) -> Result<String, Diagnostics> {
    let digest = manifest(desired, &desired.plan, config)
        .and_then(|(_, m)| m.digest().map_err(|e| error("Cannot digest the image", e)))?;
    Ok(keep_image(desired, config, digest, pool_id.and_then(|id| pool_image(config, id))).to_string())
}
