//! Properties of the built-in node types.

use crate::decode::{Bounded, decode_keywords, record};
use crate::model::Trust;
use crate::values::Port;

record! {
    /// One protected single-application image and its instances.
    pub struct UnikernelProperties ("sdsec.nodes.Unikernel properties", UnknownProperty) {
        /// The port the application listens on inside the guest. Default 8080.
        pub port: Option<Port>,
        /// Guest memory in MiB (16-65536). Default 128.
        pub memory_mb: Option<Bounded<16, 65536>>,
        /// Virtual CPUs (1-64). Default 1.
        pub vcpus: Option<Bounded<1, 64>>,
        /// How many instances to run (1-1000). Default 1.
        pub instances: Option<Bounded<1, 1000>>,
    }
}

pub use ::plan::Driver;

decode_keywords!(InvalidValue: Driver);

record! {
    /// A place instances run.
    pub struct HypervisorProperties ("sdsec.nodes.Hypervisor properties", UnknownProperty) {
        /// The site (region, data centre) where the hypervisor stands.
        pub site: String,
        /// The tenant that owns the hypervisor, if it is not shared between tenants.
        pub tenant: Option<String>,
        /// How far the host is trusted: untrusted < shared < trusted < dedicated. Default shared.
        pub trust: Option<Trust>,
        /// How the host is driven: qemu or libvirt.
        pub driver: Option<Driver>,
    }
}
