# Terraform 1.5 and later: an import block, planned and reviewed like any change.
import {
  to = sdsec_unikernel.api
  id = "i-3f2a9c0d81b4e675" # the instance id (`instance_id`, or `sdsec ps`)
}
