//! The schema of `sdsec_pool`, and the names of the attributes only it has.

use engine::pool::Warm;
use tfplugin::validators::{IntegerBetween, OneOf};
use tfplugin::{Attribute, Schema, Type};

use crate::resources::image::{
    APPLICATION, ENFORCEMENT, ID, IMAGE_DIGEST, MEMORY_MB, NAME, Operation, VCPUS, application_type, timeouts,
};

pub const SIZE: &str = "size";
pub const WARM: &str = "warm";
pub const READY: &str = "ready";
pub const MEMBERS: &str = "members";

/// The operations of its `timeouts` block.
pub const OPERATIONS: [Operation; 1] = [Operation::Create];

/// More members than this would not fit a host anyway (each is a VM).
pub const MAX_SIZE: i64 = 64;

pub fn schema() -> Schema {
    Schema::new(0)
        .description(
            "A pool of warm protected instances of one node's plan and application, from which `sdsec_unikernel`s \
             with `pool` set start fast. `warm = \"image\"` keeps the image built and verified in the store (taking \
             a member boots it); `warm = \"paused\"` keeps instances booted to readiness and paused (taking one \
             resumes it, in milliseconds); `warm = \"snapshot\"` boots the image once to readiness and saves it \
             (QEMU backend), and taking a member starts a copy of that snapshot, given its own control key, fresh \
             kernel randomness, the host's clock and its own address before it serves (a fraction of a boot, and \
             no memory held while waiting). Refresh drops members that died or whose image no longer verifies, and \
             members taken by unikernels; `ready` then shows the gap and the next apply refills the pool to \
             `size`. A policy change that only touches runtime mechanisms keeps the members (each taker is \
             reconfigured in place); one that needs a new image rebuilds them. Destroy stops every member.",
        )
        .attribute(
            Attribute::string(ID)
                .computed()
                .use_state_for_unknown()
                .description("The pool id (`pool-` and 12 hex digits), for `sdsec_unikernel.pool`."),
        )
        .attribute(
            Attribute::string(NAME)
                .optional()
                .description("A short name for the members, shown in process lists and logs. Default: `pool`."),
        )
        .attribute(Attribute::string(ENFORCEMENT).required().description(
            "The node's enforcement plan as canonical JSON, normally `sdsec_security_policy.<name>.enforcement[\"<node>\"]`.",
        ))
        .attribute(Attribute::new(APPLICATION, application_type()).required().description(
            "The application, as in `sdsec_unikernel`: `path` of a static executable, `args`, and its `port` in the guest.",
        ))
        .attribute(
            Attribute::number(MEMORY_MB).optional_computed().description(
                "Guest memory in MiB. Default: the plan's. At least what the kernel boots with (48 for sdsec's kernel, \
                 96 for Debian's), checked at plan.",
            ),
        )
        .attribute(Attribute::number(VCPUS).optional_computed().description("Virtual CPUs. Default: the plan's."))
        .attribute(
            Attribute::number(SIZE)
                .required()
                .validator(IntegerBetween { min: 0, max: MAX_SIZE })
                .description("How many ready members the pool keeps."),
        )
        .attribute(
            Attribute::string(WARM)
                .required()
                .requires_replace()
                .validator(OneOf::new(Warm::NAMES.iter().copied()))
                .description(
                    "`image` (pre-built, verified images), `paused` (booted to readiness, then paused) or `snapshot` \
                     (copies of the image's snapshot, each made its own when taken).",
                ),
        )
        .attribute(Attribute::string(IMAGE_DIGEST).computed().description("`sha256:` digest of the members' image."))
        .attribute(Attribute::number(READY).computed().description("Members ready to be taken."))
        .attribute(Attribute::new(MEMBERS, Type::list(Type::String)).computed().description(
            "The ready members: instance ids of paused members, slot ids (`m-…`) of image and snapshot members.",
        ))
        .block(timeouts::block(&[(
            Operation::Create,
            "Build, and boot each paused member until it serves (default `5m`).",
        )]))
}
