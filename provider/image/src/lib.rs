//! Protected unikernel images: a reproducible initramfs holding the enforcement runtime as
//! `/init`, one static application, its enforcement plan and kernel modules (and no shell
//! or package manager); a manifest whose SHA-256 is the image digest, computed from the
//! inputs without building; and a content-addressed store that builds each digest once,
//! verifies images before handing them out and collects garbage.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use sdsec_image::{Application, ImageSpec, Store, image_digest};
//! # let plan: plan::EnforcementPlan = serde_json::from_str("{}")?;
//! let app = Application { name: "api".into(), path: "build/api".into(), args: vec!["--listen".into(), "0.0.0.0:8080".into()] };
//! let spec = ImageSpec::new(plan, app, "build/sdsec-guest".into(), "/var/cache/sdsec/vmlinux".into());
//! let digest = image_digest(&spec)?; // plan time: hashes only
//! let store = Store::open("/var/lib/sdsec".as_ref())?;
//! let image = store.ensure(&spec)?.image; // apply time: built once, verified
//! assert_eq!(image.digest, digest);
//! # Ok(()) }
//! ```

pub mod cmdline;
pub mod cpio;
mod digest;
pub mod elf;
pub mod initramfs;
pub mod input;
pub mod kernel;
pub mod layout;
pub mod manifest;
mod memo;
pub mod shell;
mod spec;
pub mod store;

pub use digest::{DigestError, ImageDigest};
pub use manifest::{Manifest, ManifestError, image_digest};
pub use spec::{Application, ImageSpec, Module};
pub use store::{Ensured, GcReport, Image, Outcome, Store, StoreError, StoredImage};
