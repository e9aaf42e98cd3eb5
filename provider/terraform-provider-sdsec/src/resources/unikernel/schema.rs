//! The schema of `sdsec_unikernel`, and the names of the attributes only it has.

use tfplugin::{Attribute, Schema, Type};

use crate::resources::image::{
    APPLICATION, ENFORCEMENT, ID, IMAGE_DIGEST, MEMORY_MB, NAME, Operation, POOL, VCPUS, application_type, timeouts,
};

pub const HOST_PORT: &str = "host_port";
pub const PEERS: &str = "peers";
pub const ENFORCEMENT_DIGEST: &str = "enforcement_digest";
pub const INSTANCE_ID: &str = "instance_id";
pub const ENDPOINT: &str = "endpoint";
pub const IP: &str = "ip";
pub const NETWORK: &str = "network";
pub const STATE: &str = "state";
pub const BOOT_MS: &str = "boot_ms";
pub const CREATED_AT: &str = "created_at";
pub const IMAGE_STATUS: &str = "image_status";

/// The operations of its `timeouts` block.
pub const OPERATIONS: [Operation; 2] = [Operation::Create, Operation::Delete];

pub fn schema() -> Schema {
    Schema::new(0)
        .description(
            "A protected unikernel: one application in a single-application VM image generated on the fly, with \
             the enforcement runtime of its node's plan as `/init` (authentication, authorization, application \
             firewall, rate limits, audit, hardening), booted on the provider's hypervisor and kept running. \
             `image_digest` is computed at plan time from the application, the plan, the kernel and the builder, \
             so a change shows in the plan before anything is built. A policy change that touches only runtime \
             mechanisms (principals, authorization, firewall, rate limits, audit, and the flows and egress the \
             host enforces on its bridge) is an update in place: the new plan goes to the running instance over \
             its authenticated control channel, the host's network rules are rewritten, and \
             `enforcement_digest` becomes the digest the runtime acknowledges. Any change that alters the image \
             replaces the instance, and the plan says why in a warning: settings that need a new image, or \
             refresh finding the instance stopped, its image tampered with or past the policy's `max_lifetime`. \
             With `pool`, a new instance is a warm member of that `sdsec_pool` (resumed, or booted from its \
             pre-built image) rather than one built and booted from scratch; add \
             `lifecycle { create_before_destroy = true }` for blue/green replacements.",
        )
        .attribute(
            Attribute::string(ID)
                .computed()
                .use_state_for_unknown()
                .description("The instance id (`i-` and 16 hex digits), as `instance_id`; import takes it."),
        )
        .attribute(
            Attribute::string(NAME)
                .required()
                .requires_replace()
                .description("A short name for the instance, shown in process lists and logs."),
        )
        .attribute(Attribute::string(ENFORCEMENT).required().description(
            "The node's enforcement plan as canonical JSON, normally `sdsec_security_policy.<name>.enforcement[\"<node>\"]`.",
        ))
        .attribute(Attribute::new(APPLICATION, application_type()).required().description(
            "The application: `path` of a static executable (relative paths are taken from the working directory), \
             `args` passed to it, and the `port` it listens on inside the guest (all three must be given). The \
             enforcement runtime listens in front of it; only the runtime's port is forwarded.",
        ))
        .attribute(Attribute::number(MEMORY_MB).optional_computed().description(
            "Guest memory in MiB. Default: the plan's `build.memory_mb`. At least what the kernel boots with (48 for \
             sdsec's kernel, 96 for Debian's), checked at plan.",
        ))
        .attribute(Attribute::number(VCPUS).optional_computed().description(
            "Virtual CPUs. Default: the plan's `build.vcpus`.",
        ))
        .attribute(Attribute::number(HOST_PORT).optional().requires_replace().description(
            "Port of the hypervisor host forwarded to the enforcement runtime. With `network = \"bridge\"` it is \
             published on the provider's `publish_address` with client addresses preserved, also for a unikernel \
             taken from a pool (published when it is taken); default: not published, reachable at `ip` from the \
             hypervisor host. With `network = \"user\"`: on 127.0.0.1 only; default: a free port.",
        ))
        .attribute(Attribute::new(PEERS, Type::map(Type::String)).optional().description(
            "Nodes this unikernel's node `connects_to` that run elsewhere (another site, provider alias or state \
             directory), each mapped to where it is reached: `http://ADDRESS:PORT` (normally the other site's \
             `endpoint` output) or `ADDRESS:PORT`, with an IPv4 address. On a bridge the host lets this instance \
             open TCP connections to exactly that address and port, as an egress destination (on this host's \
             bridge they leave with the host's address; on a remote site with the guest's own); the peer's own \
             ingress rules still decide. Each key must be a node the policy's `connects_to` names (checked at \
             plan). Changed in place.",
        ))
        .attribute(Attribute::string(POOL).optional().description(
            "The `id` of an `sdsec_pool` to take a new instance from. A member whose image matches is taken (a \
             paused one is resumed); with none ready the instance is built and booted as without a pool, and a \
             warning says so.",
        ))
        .attribute(Attribute::string(ENFORCEMENT_DIGEST).computed().description(
            "Digest of the plan the runtime enforces, as it acknowledged it over the control channel (refresh \
             asks it again, so a runtime enforcing anything else shows as drift).",
        ))
        .attribute(
            Attribute::string(IMAGE_DIGEST)
                .computed()
                .description(
                    "`sha256:` digest of the image the instance booted (kernel, runtime, application, the plan it was \
                     built with, command line). An update in place keeps it.",
                ),
        )
        .attribute(Attribute::string(INSTANCE_ID).computed().use_state_for_unknown().description("The instance id."))
        .attribute(Attribute::string(ENDPOINT).computed().use_state_for_unknown().description(
            "Where the protected application answers. On a bridge: `http://<publish_address>:<host_port>` when \
             published (clients keep their own address), otherwise `http://<ip>:<runtime port>`, reachable from \
             the hypervisor host. On the user network: `http://127.0.0.1:<port>`.",
        ))
        .attribute(Attribute::string(IP).computed().use_state_for_unknown().description(
            "The guest's address on the provider's bridge (`network = \"bridge\"`); other unikernels whose node \
             `connects_to` this one reach it there. Null on the user network.",
        ))
        .attribute(Attribute::string(NETWORK).computed().use_state_for_unknown().description(
            "The network the instance is attached to: `bridge` or `user` (what the provider's `network = \"auto\"` \
             chose when it was created).",
        ))
        .attribute(Attribute::string(STATE).computed().description(
            "`running`, or what refresh found: `stopped` (planned for replacement) or `paused`.",
        ))
        .attribute(
            Attribute::number(BOOT_MS)
                .computed()
                .use_state_for_unknown()
                .description("Milliseconds from starting the VM to the runtime's health path answering."),
        )
        .attribute(
            Attribute::string(CREATED_AT)
                .computed()
                .use_state_for_unknown()
                .description("When the instance was booted (RFC 3339). With a `max_lifetime`, older instances are replaced."),
        )
        .attribute(Attribute::string(IMAGE_STATUS).computed().description(
            "`verified`, or what refresh found: `tampered: ...` or `missing` (planned for replacement).",
        ))
        .block(timeouts::block(&[
            (
                Operation::Create,
                "Build and boot until the runtime serves (default `5m`); past it the VM is stopped and removed.",
            ),
            (Operation::Delete, "Graceful stop before the VM is killed (default `30s`)."),
        ]))
}
