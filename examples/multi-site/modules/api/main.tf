# The API of one site: its policy and its protected unikernel, on whichever sdsec
# provider (site) the caller passes in.
terraform {
  required_providers {
    sdsec = { source = "sdsec/sdsec" }
  }
}

variable "node" {
  description = "The unikernel node template of this site in the policy document."
  type        = string
}

variable "app_path" {
  description = "The API as a static executable."
  type        = string
}

variable "peers" {
  description = "Nodes this site's node connects_to that run at other sites, each mapped to its endpoint there."
  type        = map(string)
  default     = {}
}

resource "sdsec_security_policy" "api" {
  document = file("${path.module}/../../policy.yaml")
}

resource "sdsec_unikernel" "api" {
  name        = var.node
  enforcement = sdsec_security_policy.api.enforcement[var.node]
  application = {
    path = var.app_path
    args = ["--listen", "0.0.0.0:8080"]
    port = 8080
  }
  peers = var.peers
}

output "endpoint" {
  value = sdsec_unikernel.api.endpoint
}

output "image_digest" {
  value = sdsec_unikernel.api.image_digest
}
