"""The Terraform files the evaluation writes: the configuration of one work directory and the
CLI configuration that points Terraform at the release provider."""


def cli_config(provider_dir):
    """A CLI configuration that takes sdsec/sdsec from PROVIDER_DIR (the release build)."""
    return f"""provider_installation {{
  dev_overrides {{ "sdsec/sdsec" = "{provider_dir}" }}
  direct {{}}
}}
"""


def main_tf(work_dir, app, count, warm="none", pool_size=0, use_pool=False, create_before_destroy=False):
    """WORK_DIR/main.tf: the quickstart policy (WORK_DIR/policy.yaml), COUNT `sdsec_unikernel`s
    of the example API APP and, unless WARM is "none", an `sdsec_pool` of POOL_SIZE members kept
    warm as WARM ("image", "paused" or "snapshot") that the unikernels draw from if USE_POOL."""
    application = f'{{ path = "{app}", args = ["--listen", "0.0.0.0:8080"], port = 8080 }}'
    pool_block = pool_attr = pool_outputs = ""
    if warm != "none":
        pool_block = f"""resource "sdsec_pool" "api" {{
  name        = "api"
  enforcement = sdsec_security_policy.api.enforcement["api"]
  application = {application}
  size        = {pool_size}
  warm        = "{warm}"
}}"""
        pool_outputs = """output "pool_ready" { value = sdsec_pool.api.ready }
output "pool_members" { value = sdsec_pool.api.members }"""
        if use_pool:
            pool_attr = "pool        = sdsec_pool.api.id"
    lifecycle = "lifecycle { create_before_destroy = true }" if create_before_destroy else ""
    return f"""terraform {{
  required_providers {{
    sdsec = {{ source = "sdsec/sdsec" }}
  }}
}}
provider "sdsec" {{
  state_dir = "{work_dir}/state"
}}
resource "sdsec_security_policy" "api" {{
  document = file("${{path.module}}/policy.yaml")
}}
{pool_block}
resource "sdsec_unikernel" "api" {{
  count       = {count}
  name        = "api-${{count.index}}"
  enforcement = sdsec_security_policy.api.enforcement["api"]
  application = {application}
  {pool_attr}
  {lifecycle}
}}
output "ids" {{ value = sdsec_unikernel.api[*].instance_id }}
output "endpoints" {{ value = sdsec_unikernel.api[*].endpoint }}
output "boot_ms" {{ value = sdsec_unikernel.api[*].boot_ms }}
output "digests" {{ value = sdsec_unikernel.api[*].image_digest }}
{pool_outputs}
"""
