# Fails the plan if someone changed what the reviewed policy enforces.
locals {
  reviewed_digest = "sha256:0c6d5f0b0a6f1c3e8e2b9c6f4a1d7e3b5c9f2a4d6e8b0c1d3f5a7b9c2e4f6a8b"
}

output "policy_unchanged" {
  value = provider::sdsec::policy_digest(file("${path.module}/policies/api.yaml")) == local.reviewed_digest
}
