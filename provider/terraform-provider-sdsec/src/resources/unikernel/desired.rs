//! What a configuration (or a planned state) asks for, read from its Terraform value, with
//! diagnostics on the attribute at fault.

use std::path::PathBuf;
use std::time::Duration;

use sectosca::EnforcementPlan;
use serde::{Deserialize, Serialize};
use tfplugin::{AttributePath, Diagnostics, Value};

use crate::launch::AppSpec;
use crate::values::{is_known, string};

pub const DEFAULT_CREATE_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_DELETE_TIMEOUT: Duration = Duration::from_secs(30);

/// The application attribute as given, kept with the instance so import can restore it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Application {
    pub path: String,
    pub args: Vec<String>,
    pub port: u16,
}

/// What the instance records for its owner: enough to rebuild the state on import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub name: String,
    pub enforcement: String,
    pub application: Application,
    pub host_port: Option<u16>,
    /// The plan the image was built with, when it differs from `enforcement` (after an
    /// update in place, or from a pool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_enforcement: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Desired {
    pub name: String,
    pub enforcement: String,
    pub plan: EnforcementPlan,
    pub application: Application,
    pub memory_mb: Option<u64>,
    pub vcpus: Option<u64>,
    pub host_port: Option<u16>,
    pub pool: Option<String>,
}

impl Desired {
    pub fn app_spec(&self) -> AppSpec {
        AppSpec {
            path: PathBuf::from(&self.application.path),
            args: self.application.args.clone(),
            port: Some(self.application.port),
        }
    }

    pub fn metadata(&self) -> Metadata {
        Metadata {
            name: self.name.clone(),
            enforcement: self.enforcement.clone(),
            application: self.application.clone(),
            host_port: self.host_port,
            image_enforcement: None,
            pool: self.pool.clone(),
        }
    }
}

fn number(value: &Value, attribute: &str) -> Option<i64> {
    value.get(attribute).and_then(Value::as_number).and_then(|n| n.as_i64())
}

fn in_range<T: TryFrom<i64>>(value: &Value, attribute: &str, min: i64, max: i64, diags: &mut Diagnostics) -> Option<T> {
    let n = number(value, attribute)?;
    if n < min || n > max {
        diags.attribute_error(
            AttributePath::attr(attribute),
            "Value out of range",
            format!("`{attribute}` must be between {min} and {max}, not {n}."),
        );
        return None;
    }
    T::try_from(n).ok()
}

/// `None` while anything it needs is unknown (the plan then shows unknown computed values).
/// `memory_mb` and `vcpus` are also computed: unknown there means "the plan's default".
pub fn read(value: &Value, diags: &mut Diagnostics) -> Option<Desired> {
    // Attributes a schema lacks (`sdsec_pool` has no `host_port`) count as known and null.
    for attribute in ["name", "enforcement", "application", "host_port", "pool"] {
        if value.get(attribute).is_some() && !is_known(value, attribute) {
            return None;
        }
    }
    let name = string(value, "name")?;
    let enforcement = string(value, "enforcement")?;
    let plan: EnforcementPlan = match serde_json::from_str(&enforcement) {
        Ok(plan) => plan,
        Err(e) => {
            diags.attribute_error(
                AttributePath::attr("enforcement"),
                "Not an enforcement plan",
                format!(
                    "`enforcement` must be one node's plan from `sdsec_security_policy.<name>.enforcement[\"<node>\"]` \
                     (or `sdsec compile --node`); it does not parse as one: {e}."
                ),
            );
            return None;
        }
    };
    let app = value.get("application")?;
    let path = string(app, "path").unwrap_or_default();
    if path.is_empty() {
        diags.attribute_error(
            AttributePath::attr("application").attribute("path"),
            "Missing application path",
            "Give the path of the static executable to run.",
        );
    }
    let args = match app.get("args") {
        Some(Value::List(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    let port = match number(app, "port") {
        Some(p) if (1..=65535).contains(&p) => p as u16,
        other => {
            diags.attribute_error(
                AttributePath::attr("application").attribute("port"),
                "Invalid application port",
                format!(
                    "`application.port` is the port the application listens on in the guest, 1 to 65535; got {other:?}."
                ),
            );
            0
        }
    };
    let memory_mb = in_range(value, "memory_mb", 64, 65536, diags);
    let vcpus = in_range(value, "vcpus", 1, 64, diags);
    let host_port = in_range(value, "host_port", 1024, 65535, diags);
    if diags.has_errors() {
        return None;
    }
    Some(Desired {
        name,
        enforcement,
        plan,
        application: Application { path, args, port },
        memory_mb,
        vcpus,
        host_port,
        pool: string(value, "pool"),
    })
}

/// `30s`, `5m`, `1h` or a combination such as `1m30s`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = 0u64;
    let mut digits = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: u64 = digits.parse().ok()?;
        digits.clear();
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return None,
        };
    }
    (digits.is_empty() && total > 0).then(|| Duration::from_secs(total))
}

/// The `timeouts` block's `create` or `delete`, or the default; a bad value is an error
/// on its attribute.
pub fn timeout(value: &Value, which: &str, default: Duration, diags: &mut Diagnostics) -> Duration {
    let Some(text) = value.get("timeouts").and_then(|t| string(t, which)) else { return default };
    parse_duration(&text).unwrap_or_else(|| {
        diags.attribute_error(
            AttributePath::attr("timeouts").attribute(which),
            "Invalid duration",
            format!("`{text}` is not a duration; write it as `30s`, `5m`, `1h` or `1m30s`."),
        );
        default
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        for bad in ["", "5", "m", "5d", "-1s", "0s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
