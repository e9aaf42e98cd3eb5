data "sdsec_policy_document" "api" {
  document = file("${path.module}/policies/api.yaml")
  inputs   = { threat_level = "elevated" }
}

output "api_summary" {
  value = data.sdsec_policy_document.api.summary
}
