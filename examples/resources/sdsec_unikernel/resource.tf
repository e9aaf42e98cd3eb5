resource "sdsec_security_policy" "api" {
  document = file("${path.module}/policies/api.yaml")
}

# The API as a protected unikernel: the runtime in front of it enforces the node `api`'s
# plan; requests reach the application only through `endpoint`.
resource "sdsec_unikernel" "api" {
  name        = "api"
  enforcement = sdsec_security_policy.api.enforcement["api"]
  application = {
    path = "build/api" # a static executable
    args = ["--listen", "0.0.0.0:8080"]
    port = 8080
  }
  memory_mb = 128

  timeouts {
    create = "5m"
  }
}

output "api_endpoint" {
  value = sdsec_unikernel.api.endpoint
}
