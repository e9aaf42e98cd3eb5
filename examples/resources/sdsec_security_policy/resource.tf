variable "threat_level" {
  type    = string
  default = "normal"
}

resource "sdsec_security_policy" "api" {
  document = file("${path.module}/policies/api.yaml")
  inputs   = { threat_level = var.threat_level }
}

# What the policy enforces on the node `api`, decoded for reading.
output "api_rate_limits" {
  value = jsondecode(sdsec_security_policy.api.enforcement["api"]).runtime.firewall.rate_limits
}
