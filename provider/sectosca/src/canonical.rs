//! Canonical JSON and digests, kept by the plan crate (the runtime computes them too).

pub use ::plan::canonical::{CanonicalError, sha256_digest, to_canonical_json};
