//! The schema of `sdsec_unikernel`.

use tfplugin::{Attribute, Block, NestedBlock, Nesting, Schema, Type};

pub fn application_type() -> Type {
    Type::object([("path", Type::String), ("args", Type::list(Type::String)), ("port", Type::Number)])
}

pub fn schema() -> Schema {
    Schema::new(0)
        .description(
            "A protected unikernel: one application in a single-application VM image generated on the fly, with \
             the enforcement runtime of its node's plan as `/init` (authentication, authorization, application \
             firewall, rate limits, audit, hardening), booted on the provider's hypervisor and kept running. \
             `image_digest` is computed at plan time from the application, the plan, the kernel and the builder, \
             so a change shows in the plan before anything is built. A policy change that touches only mechanisms \
             the runtime can reconfigure (principals, authorization, firewall, rate limits, audit) is an update \
             in place: the new plan goes to the running instance over its authenticated control channel, and \
             `enforcement_digest` becomes the digest the runtime acknowledges. Any change that alters the image \
             replaces the instance, and the plan says why in a warning: settings that need a new image, or \
             refresh finding the instance stopped, its image tampered with or past the policy's `max_lifetime`. \
             With `pool`, a new instance is a warm member of that `sdsec_pool` (resumed, or booted from its \
             pre-built image) rather than one built and booted from scratch; add \
             `lifecycle { create_before_destroy = true }` for blue/green replacements.",
        )
        .attribute(
            Attribute::string("id")
                .computed()
                .use_state_for_unknown()
                .description("The instance id (`i-` and 16 hex digits), as `instance_id`; import takes it."),
        )
        .attribute(
            Attribute::string("name")
                .required()
                .requires_replace()
                .description("A short name for the instance, shown in process lists and logs."),
        )
        .attribute(Attribute::string("enforcement").required().description(
            "The node's enforcement plan as canonical JSON, normally `sdsec_security_policy.<name>.enforcement[\"<node>\"]`.",
        ))
        .attribute(Attribute::new("application", application_type()).required().description(
            "The application: `path` of a static executable (relative paths are taken from the working directory), \
             `args` passed to it, and the `port` it listens on inside the guest (all three must be given). The \
             enforcement runtime listens in front of it; only the runtime's port is forwarded.",
        ))
        .attribute(Attribute::number("memory_mb").optional_computed().description(
            "Guest memory in MiB. Default: the plan's `build.memory_mb`.",
        ))
        .attribute(Attribute::number("vcpus").optional_computed().description(
            "Virtual CPUs. Default: the plan's `build.vcpus`.",
        ))
        .attribute(Attribute::number("host_port").optional().requires_replace().description(
            "Port on 127.0.0.1 of the hypervisor host forwarded to the enforcement runtime. Default: a free port.",
        ))
        .attribute(Attribute::string("pool").optional().description(
            "The `id` of an `sdsec_pool` to take a new instance from. A member whose image matches is taken (a \
             paused one is resumed); with none ready the instance is built and booted as without a pool, and a \
             warning says so.",
        ))
        .attribute(Attribute::string("enforcement_digest").computed().description(
            "Digest of the plan the runtime enforces, as it acknowledged it over the control channel (refresh \
             asks it again, so a runtime enforcing anything else shows as drift).",
        ))
        .attribute(
            Attribute::string("image_digest")
                .computed()
                .description(
                    "`sha256:` digest of the image the instance booted (kernel, runtime, application, the plan it was \
                     built with, command line). An update in place keeps it.",
                ),
        )
        .attribute(Attribute::string("instance_id").computed().use_state_for_unknown().description("The instance id."))
        .attribute(
            Attribute::string("endpoint")
                .computed()
                .use_state_for_unknown()
                .description("Where the protected application answers: `http://127.0.0.1:<port>`."),
        )
        .attribute(Attribute::string("state").computed().description(
            "`running`, or what refresh found: `stopped` (planned for replacement) or `paused`.",
        ))
        .attribute(
            Attribute::number("boot_ms")
                .computed()
                .use_state_for_unknown()
                .description("Milliseconds from starting the VM to the runtime's health path answering."),
        )
        .attribute(
            Attribute::string("created_at")
                .computed()
                .use_state_for_unknown()
                .description("When the instance was booted (RFC 3339). With a `max_lifetime`, older instances are replaced."),
        )
        .attribute(Attribute::string("image_status").computed().description(
            "`verified`, or what refresh found: `tampered: ...` or `missing` (planned for replacement).",
        ))
        .block(NestedBlock::new(
            "timeouts",
            Nesting::Single,
            Block::new()
                .description("How long operations may take, as `30s`, `5m` or `1h`.")
                .attribute(Attribute::string("create").optional().description(
                    "Build and boot until the runtime serves (default `5m`); past it the VM is stopped and removed.",
                ))
                .attribute(Attribute::string("delete").optional().description(
                    "Graceful stop before the VM is killed (default `30s`).",
                )),
        ))
}
