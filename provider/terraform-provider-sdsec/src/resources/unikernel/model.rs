//! `sdsec_unikernel` as a Rust value: decoded once from a configuration, plan or state,
//! encoded back after plan or apply. The only place its attributes are read or written.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use engine::instance::VERIFIED;
use engine::instance::{ImageInputs, Metadata, Refreshed, Unikernel};
use engine::network::Reach;
use hypervisor::{Instance, InstanceId};
use tfplugin::Value;

use super::schema::{
    BOOT_MS, CREATED_AT, ENDPOINT, ENFORCEMENT_DIGEST, HOST_PORT, IMAGE_STATUS, INSTANCE_ID, IP, NETWORK, OPERATIONS,
    PEERS, STATE,
};
use crate::resources::image::{
    ApplicationFields, ID, IMAGE_DIGEST, ImageFields, ImageModel, Invalid, NAME, Operation, POOL, Timeouts, Unresolved,
    in_range,
};
use crate::values::{Field, Object, ShapeError};

/// Ports a unikernel may be published on: unprivileged ones.
const HOST_PORTS: std::ops::RangeInclusive<u64> = 1024..=65535;

/// What plan and refresh say of a running instance with a verified image.
pub const RUNNING: &str = "running";
pub const STOPPED: &str = "stopped";

#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    // Set in the configuration.
    pub name: Field<String>,
    pub image: ImageFields,
    pub host_port: Field<i64>,
    pub peers: Field<BTreeMap<String, String>>,
    pub pool: Field<String>,
    pub timeouts: Timeouts,
    // Set by the provider.
    pub enforcement_digest: Field<String>,
    pub image_digest: Field<String>,
    pub instance: InstanceFields,
    /// `running`, or what refresh found.
    pub state: Field<String>,
    /// `verified`, or what refresh found.
    pub image_status: Field<String>,
}

/// What only an instance can tell: known once it exists.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceFields {
    pub id: Field<String>,
    pub instance_id: Field<String>,
    pub endpoint: Field<String>,
    pub ip: Field<String>,
    pub network: Field<String>,
    pub boot_ms: Field<i64>,
    pub created_at: Field<String>,
}

impl InstanceFields {
    /// Before the instance exists, or before the one replacing it does.
    pub fn unknown() -> Self {
        InstanceFields {
            id: Field::unknown(),
            instance_id: Field::unknown(),
            endpoint: Field::unknown(),
            ip: Field::unknown(),
            network: Field::unknown(),
            boot_ms: Field::unknown(),
            created_at: Field::unknown(),
        }
    }

    fn of(instance: &Instance, reach: &Reach) -> Self {
        InstanceFields {
            id: Field::Known(instance.id.as_str().to_owned()),
            instance_id: Field::Known(instance.id.as_str().to_owned()),
            endpoint: Field::Known(reach.endpoint.clone()),
            ip: reach.ip.map(|ip| ip.to_string()).into(),
            network: Field::Known(reach.mode().as_str().to_owned()),
            boot_ms: Field::Known(instance.boot_ms as i64),
            created_at: Field::Known(rfc3339(instance.started_at_ms)),
        }
    }
}

impl ImageModel for Model {
    type Desired = Unikernel;
    const KIND: &'static str = "Unikernel";
    const OPERATIONS: &'static [Operation] = &OPERATIONS;

    fn decode(value: &Value) -> Result<Self, ShapeError> {
        let object = Object::root(value);
        Ok(Model {
            name: object.field(NAME)?,
            image: ImageFields::decode(&object)?,
            host_port: object.field(HOST_PORT)?,
            peers: object.field(PEERS)?,
            pool: object.field(POOL)?,
            timeouts: Timeouts::decode(&object, &OPERATIONS)?,
            enforcement_digest: object.field(ENFORCEMENT_DIGEST)?,
            image_digest: object.field(IMAGE_DIGEST)?,
            instance: InstanceFields {
                id: object.field(ID)?,
                instance_id: object.field(INSTANCE_ID)?,
                endpoint: object.field(ENDPOINT)?,
                ip: object.field(IP)?,
                network: object.field(NETWORK)?,
                boot_ms: object.field(BOOT_MS)?,
                created_at: object.field(CREATED_AT)?,
            },
            state: object.field(STATE)?,
            image_status: object.field(IMAGE_STATUS)?,
        })
    }

    /// What the configuration asks for. Decoded from a configuration, `memory_mb` and
    /// `vcpus` left out take the plan's; from a plan, they hold what plan chose.
    fn desired(&self) -> Result<Unikernel, Unresolved> {
        // `peers` is checked once known; unknown, it changes nothing of the image.
        let pending = self.name.is_unknown() || self.host_port.is_unknown() || self.pool.is_unknown();
        let (image, (host_port, peers)) = self.image.resolve_with(pending, |plan, invalid| {
            let host_port = in_range(&self.host_port, HOST_PORT, HOST_PORTS, invalid).map(|p| p as u16);
            let given = self.peers.known().cloned().unwrap_or_default();
            let peers = engine::peers::peers(plan, &given).unwrap_or_else(|e| {
                invalid.push(Invalid::Peer(e));
                Vec::new()
            });
            (host_port, peers)
        })?;
        // Required: null only in a state that never had it.
        let Some(name) = self.name.known() else { return Err(Unresolved::Pending) };
        Ok(Unikernel { name: name.clone(), image, host_port, pool: self.pool.known().cloned(), peers })
    }

    fn encode(&self) -> Value {
        let instance = &self.instance;
        let mut attributes = vec![
            (ID, instance.id.encode()),
            (NAME, self.name.encode()),
            (HOST_PORT, self.host_port.encode()),
            (PEERS, self.peers.encode()),
            (POOL, self.pool.encode()),
            (ENFORCEMENT_DIGEST, self.enforcement_digest.encode()),
            (IMAGE_DIGEST, self.image_digest.encode()),
            (INSTANCE_ID, instance.instance_id.encode()),
            (ENDPOINT, instance.endpoint.encode()),
            (IP, instance.ip.encode()),
            (NETWORK, instance.network.encode()),
            (STATE, self.state.encode()),
            (BOOT_MS, instance.boot_ms.encode()),
            (CREATED_AT, instance.created_at.encode()),
            (IMAGE_STATUS, self.image_status.encode()),
            (crate::resources::image::timeouts::TIMEOUTS, self.timeouts.encode()),
        ];
        attributes.extend(self.image.encode());
        Value::object(attributes)
    }

    fn image(desired: &Unikernel) -> &ImageInputs {
        &desired.image
    }

    fn plan_unknown(&mut self, creating: bool, configured: &Self) -> Vec<&'static str> {
        // Any image input unknown may change the image: a running instance is replaced.
        let forcing = if creating { Vec::new() } else { configured.image.unknown_inputs() };
        self.image_digest = Field::unknown();
        self.enforcement_digest = Field::unknown();
        self.state.unknown_when_null();
        self.image_status.unknown_when_null();
        self.image.plan_unknown();
        if creating || !forcing.is_empty() {
            self.instance = InstanceFields::unknown();
        }
        forcing
    }

    fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }
}

impl Model {
    /// The instance the state is about.
    pub fn instance_id(&self) -> Option<InstanceId> {
        self.instance.id.known().and_then(|id| id.parse().ok())
    }

    /// What apply learnt by booting, and how the instance is reached.
    pub fn record(&mut self, instance: &Instance, reach: &Reach) {
        self.instance = InstanceFields::of(instance, reach);
        self.state = Field::Known(RUNNING.to_owned());
        self.image_status = Field::Known(VERIFIED.to_owned());
    }

    /// What refresh found: the instance's state, the plan its runtime enforces (kept as it
    /// was when the runtime does not answer), its image's status.
    pub fn refreshed(&mut self, refreshed: &Refreshed) {
        self.state = Field::Known(refreshed.state.as_str().to_owned());
        if let Some(digest) = &refreshed.enforced {
            self.enforcement_digest = Field::Known(digest.clone());
        }
        self.image_status = Field::Known(refreshed.image.to_string());
    }

    /// The state of an imported instance, from what it recorded when it was booted.
    pub fn imported(instance: &Instance, metadata: &Metadata, reach: &Reach) -> Self {
        let app = &metadata.application;
        let enforcement_digest = serde_json::from_str::<::plan::EnforcementPlan>(&metadata.enforcement)
            .map_or(Field::Null, |plan| Field::Known(plan.digest()));
        let mut model = Model {
            name: Field::Known(metadata.name.clone()),
            image: ImageFields {
                enforcement: Field::Known(metadata.enforcement.clone()),
                application: Field::Known(ApplicationFields {
                    path: Some(app.path.clone()),
                    args: Some(app.args.clone()),
                    port: Some(i64::from(app.port)),
                }),
                memory_mb: Field::Known(instance.memory_mb as i64),
                vcpus: Field::Known(instance.vcpus as i64),
            },
            host_port: metadata.host_port.map(i64::from).into(),
            peers: Some(&metadata.peers)
                .filter(|peers| !peers.is_empty())
                .map(|peers| peers.iter().map(|peer| (peer.node.clone(), peer.endpoint.clone())).collect())
                .into(),
            pool: metadata.pool.clone().into(),
            timeouts: Timeouts::none(),
            enforcement_digest,
            image_digest: Field::Known(instance.image_digest.as_str().to_owned()),
            instance: InstanceFields::unknown(),
            state: Field::Null,
            image_status: Field::Null,
        };
        model.record(instance, reach);
        model
    }

    /// Whether the instance has outlived the plan's `max_lifetime`.
    pub fn expired(&self, plan: &::plan::EnforcementPlan) -> bool {
        let Some(max) = plan.build.hardening.max_lifetime_seconds else { return false };
        let Some(created) = self.instance.created_at.known().and_then(|t| parse_rfc3339(t)) else { return false };
        SystemTime::now().duration_since(created).is_ok_and(|age| age > Duration::from_secs(max))
    }
}

fn rfc3339(ms: u64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(ms);
    time::OffsetDateTime::from(at).format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok().map(SystemTime::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_with_lifetime(seconds: Option<u64>) -> ::plan::EnforcementPlan {
        let source = sectosca::Source::new("t.yaml", include_str!("../../../../../examples/quickstart/policy.yaml"));
        let compiled = sectosca::compile(&source, &Default::default(), &sectosca::Options::default());
        let mut plan = compiled.plans["api"].clone();
        plan.build.hardening.max_lifetime_seconds = seconds;
        plan
    }

    fn created(at: Option<String>) -> Model {
        let mut model = Model::decode(&Value::Null).unwrap();
        model.instance.created_at = at.into();
        model
    }

    #[test]
    fn instances_older_than_max_lifetime_expire() {
        let hour_ago = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64 - 3_600_000;
        let prior = created(Some(rfc3339(hour_ago)));
        assert!(prior.expired(&plan_with_lifetime(Some(1800))));
        assert!(!prior.expired(&plan_with_lifetime(Some(7200))));
        assert!(!prior.expired(&plan_with_lifetime(None)));
        assert!(!created(None).expired(&plan_with_lifetime(Some(1))));
    }
}
