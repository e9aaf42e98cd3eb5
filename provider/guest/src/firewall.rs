//! L3/L4 ingress rules, judged once per connection before a byte is read. The rule
//! evaluation is the plan crate's ([`plan::ingress`]), shared with the host, which asks it
//! whether its readiness probe is admitted.

pub use plan::ingress::{allows as ingress_allows, canonical_ip};
