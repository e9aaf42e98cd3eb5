# Terraform 1.5 and later: an import block, planned and reviewed like any change.
import {
  to = sdsec_security_policy.api
  id = "pol-3f2a9c0d81b4e675" # the provider's policy record (`id`)
}
