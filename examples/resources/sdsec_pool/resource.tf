resource "sdsec_security_policy" "api" {
  document = file("${path.module}/policies/api.yaml")
}

# Three instances of the API booted to readiness and paused: a unikernel taking one is
# serving in milliseconds instead of seconds.
resource "sdsec_pool" "api" {
  name        = "api"
  enforcement = sdsec_security_policy.api.enforcement["api"]
  application = { path = "build/api", args = ["--listen", "0.0.0.0:8080"], port = 8080 }
  size        = 3
  warm        = "paused" # or "image": pre-built, verified images
}

resource "sdsec_unikernel" "api" {
  count       = 2
  name        = "api-${count.index}"
  enforcement = sdsec_security_policy.api.enforcement["api"]
  application = { path = "build/api", args = ["--listen", "0.0.0.0:8080"], port = 8080 }
  pool        = sdsec_pool.api.id

  # Blue/green: a replacement (a policy change that needs a new image) takes a warm member
  # and serves before the old instance stops. Changes the runtime can apply in place
  # (principals, authorization, firewall, rate limits, audit) keep the instance.
  lifecycle {
    create_before_destroy = true
  }
}
