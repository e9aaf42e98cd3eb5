# Quickstart: one security policy and one protected unikernel running the example API.
# Run it with scripts/quickstart.sh (builds everything and uses a local dev override).

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

variable "host_port" {
  description = "Where the protected API is published on this host."
  type        = number
  default     = 18080
}

variable "app_path" {
  description = "The example API as a static executable (scripts/build.sh builds it)."
  type        = string
  default     = "../../target/x86_64-unknown-linux-gnu/guest/sdsec-example-api"
}

provider "sdsec" {
  state_dir = "${path.root}/sdsec-state"
  # Published on this host's loopback only (with network = "bridge"; the user network
  # forwards from 127.0.0.1 anyway). "0.0.0.0" would publish on every address of the host.
  publish_address = "127.0.0.1"
}

resource "sdsec_security_policy" "api" {
  document = file("${path.module}/policy.yaml")
  inputs   = { threat_level = var.threat_level }
}

# The API behind its enforcement runtime, on the embedded QEMU backend. Run as root, the
# provider attaches it to its own bridge (network = "auto"): the guest gets an address of its
# own and the runtime sees each client's real address.
resource "sdsec_unikernel" "api" {
  name        = "api"
  enforcement = sdsec_security_policy.api.enforcement["api"]
  application = {
    path = var.app_path
    args = ["--listen", "0.0.0.0:8080"]
    port = 8080
  }
  host_port = var.host_port
}

output "endpoint" {
  value = sdsec_unikernel.api.endpoint
}

output "network" {
  value = sdsec_unikernel.api.network
}

output "console_log" {
  value = abspath("${path.root}/sdsec-state/instances/${sdsec_unikernel.api.instance_id}/console.log")
}

output "audit_log" {
  value = abspath("${path.root}/sdsec-state/instances/${sdsec_unikernel.api.instance_id}/audit.log")
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
