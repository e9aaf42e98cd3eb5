# Quickstart: manage one security policy and show what it enforces.
# Run it with scripts/quickstart.sh (builds the provider and uses a local dev override).

terraform {
  required_providers {
    sdsec = {
      source = "sdsec/sdsec"
    }
  }
}

variable "threat_level" {
  description = "normal, elevated or high: raises the protection of the API."
  type        = string
  default     = "normal"
}

provider "sdsec" {
  state_dir = "${path.root}/sdsec-state"
}

resource "sdsec_security_policy" "api" {
  document = file("${path.module}/policy.yaml")
  inputs   = { threat_level = var.threat_level }
}

output "digest" {
  value = sdsec_security_policy.api.digest
}

output "summary" {
  value = sdsec_security_policy.api.summary
}

output "api_rate_limits" {
  value = jsondecode(sdsec_security_policy.api.enforcement["api"]).runtime.firewall.rate_limits
}
