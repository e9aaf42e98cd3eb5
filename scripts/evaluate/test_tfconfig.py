"""The Terraform files, byte for byte as evaluate.sh wrote them before it became a launcher."""

import unittest

import tfconfig

POOL = """terraform {
  required_providers {
    sdsec = { source = "sdsec/sdsec" }
  }
}
provider "sdsec" {
  state_dir = "/w/prop-pool/state"
}
resource "sdsec_security_policy" "api" {
  document = file("${path.module}/policy.yaml")
}
resource "sdsec_pool" "api" {
  name        = "api"
  enforcement = sdsec_security_policy.api.enforcement["api"]
  application = { path = "/x/app", args = ["--listen", "0.0.0.0:8080"], port = 8080 }
  size        = 5
  warm        = "paused"
}
resource "sdsec_unikernel" "api" {
  count       = 5
  name        = "api-${count.index}"
  enforcement = sdsec_security_policy.api.enforcement["api"]
  application = { path = "/x/app", args = ["--listen", "0.0.0.0:8080"], port = 8080 }
  pool        = sdsec_pool.api.id
  lifecycle { create_before_destroy = true }
}
output "ids" { value = sdsec_unikernel.api[*].instance_id }
output "endpoints" { value = sdsec_unikernel.api[*].endpoint }
output "boot_ms" { value = sdsec_unikernel.api[*].boot_ms }
output "digests" { value = sdsec_unikernel.api[*].image_digest }
output "pool_ready" { value = sdsec_pool.api.ready }
output "pool_members" { value = sdsec_pool.api.members }
"""

PLAIN = """terraform {
  required_providers {
    sdsec = { source = "sdsec/sdsec" }
  }
}
provider "sdsec" {
  state_dir = "/w/ondemand-none/state"
}
resource "sdsec_security_policy" "api" {
  document = file("${path.module}/policy.yaml")
}

resource "sdsec_unikernel" "api" {
  count       = 1
  name        = "api-${count.index}"
  enforcement = sdsec_security_policy.api.enforcement["api"]
  application = { path = "/x/app", args = ["--listen", "0.0.0.0:8080"], port = 8080 }
  
  
}
output "ids" { value = sdsec_unikernel.api[*].instance_id }
output "endpoints" { value = sdsec_unikernel.api[*].endpoint }
output "boot_ms" { value = sdsec_unikernel.api[*].boot_ms }
output "digests" { value = sdsec_unikernel.api[*].image_digest }

"""


class MainTf(unittest.TestCase):
    def test_unikernels_from_a_pool(self):
        self.assertEqual(tfconfig.main_tf("/w/prop-pool", "/x/app", 5, "paused", 5, use_pool=True,
                                          create_before_destroy=True), POOL)

    def test_unikernels_alone(self):
        self.assertEqual(tfconfig.main_tf("/w/ondemand-none", "/x/app", 1), PLAIN)

    def test_a_pool_beside_the_unikernels(self):
        text = tfconfig.main_tf("/w/density", "/x/app", 3, "paused", 3, use_pool=False)
        self.assertIn('resource "sdsec_pool" "api" {', text)
        self.assertIn('output "pool_members" { value = sdsec_pool.api.members }', text)
        self.assertNotIn("pool        = sdsec_pool.api.id", text)
        self.assertNotIn("lifecycle", text)
        self.assertIn("  count       = 3\n", text)

    def test_a_snapshot_pool(self):
        text = tfconfig.main_tf("/w/ondemand-snapshot", "/x/app", 1, "snapshot", 2, use_pool=True)
        self.assertEqual(text, POOL.replace("prop-pool", "ondemand-snapshot").replace("size        = 5", "size        = 2")
                         .replace('warm        = "paused"', 'warm        = "snapshot"').replace("count       = 5", "count       = 1")
                         .replace("  lifecycle { create_before_destroy = true }\n", "  \n"))

    def test_cli_config(self):
        self.assertEqual(tfconfig.cli_config("/r/target/release"), """provider_installation {
  dev_overrides { "sdsec/sdsec" = "/r/target/release" }
  direct {}
}
""")


if __name__ == "__main__":
    unittest.main()
