# The id is the instance id (the `instance_id` attribute, or `sdsec ps`).
terraform import sdsec_unikernel.api i-3f2a9c0d81b4e675
