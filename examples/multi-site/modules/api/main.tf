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
}

output "endpoint" {
  value = sdsec_unikernel.api.endpoint
}

output "image_digest" {
  value = sdsec_unikernel.api.image_digest
}
