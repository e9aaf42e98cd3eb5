//! The private state Terraform keeps beside a unikernel's: the plan its image was built
//! with, and how many refused control messages were already reported.

use plan::EnforcementPlan;

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Private {
    /// The plan the image was built with, which decides whether a later policy change can
    /// be applied in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    image_enforcement: Option<String>,
    /// How many refused control messages the console showed at the last refresh.
    #[serde(default)]
    control_refused: u64,
}

fn decode(private: &[u8]) -> Private {
    serde_json::from_slice(private).unwrap_or_default()
}

fn encode(private: &Private) -> Vec<u8> {
    serde_json::to_vec(private).unwrap_or_default()
}

/// The private state of a new instance whose image was built with `image_plan`.
pub fn new(image_plan: &EnforcementPlan) -> Vec<u8> {
    encode(&Private { image_enforcement: Some(image_plan.canonical_json()), control_refused: 0 })
}

/// The plan the image was built with, when the private state records it.
pub fn image_plan(private: &[u8]) -> Option<EnforcementPlan> {
    serde_json::from_str(&decode(private).image_enforcement?).ok()
}

/// Refused control messages already reported, and the private state recording `now`.
pub fn refused_reported(private: &[u8], now: u64) -> (u64, Vec<u8>) {
    let mut decoded = decode(private);
    let before = decoded.control_refused;
    decoded.control_refused = now;
    (before, encode(&decoded))
}
