# One module, two sites: Paris on the embedded QEMU backend, Lyon on a libvirt daemon
# (here a second daemon on this machine stands for the Lyon host; scripts/libvirt.sh
# --second starts it). Each provider alias has its own state directory and declares where
# its hypervisor stands, which the policy's placement requirements are checked against.
terraform {
  required_providers {
    sdsec = { source = "sdsec/sdsec" }
  }
}

variable "app_path" {
  description = "The example API as a static executable (scripts/build.sh builds it)."
  type        = string
  default     = "../../target/x86_64-unknown-linux-gnu/guest/sdsec-example-api"
}

variable "network" {
  description = "auto (the bridge when run as root), bridge or user, at both sites."
  type        = string
  default     = "auto"
}

variable "lyon_libvirt_uri" {
  description = "The Lyon host's libvirt daemon: this machine's second daemon by default, or another host's (qemu+tls://lyon.example/system, qemu+ssh://root@lyon.example/system)."
  type        = string
  default     = "qemu+unix:///system?socket=/run/sdsec-libvirt2/libvirt-sock"
}

# Two state directories on one host: as root (network = "auto" is then the bridge) each site
# needs a bridge and a subnet of its own.
provider "sdsec" {
  alias      = "paris"
  state_dir  = "${path.root}/state-paris"
  hypervisor = "qemu"
  network    = var.network
  bridge     = "sdsec-paris"
  subnet     = "10.213.1.0/24"
  site       = "paris"
  tenant     = "shop"
  trust      = "trusted"
}

provider "sdsec" {
  alias       = "lyon"
  state_dir   = "${path.root}/state-lyon"
  hypervisor  = "libvirt"
  libvirt_uri = var.lyon_libvirt_uri
  network     = var.network
  bridge      = "sdsec-lyon"
  subnet      = "10.213.2.0/24"
  site        = "lyon"
  tenant      = "shop"
  trust       = "trusted"
}

# Paris's API calls Lyon's (the policy's `connects_to`). Lyon runs under the other provider,
# so its address comes from the Lyon module's output: `peers` lets Paris's instance reach
# exactly that address and port (a change of Lyon's endpoint is applied to Paris in place).
# With a real Lyon host the flow works in every mode; with this machine's second daemon
# standing for Lyon, as root (both sites bridges of one host), Lyon's guest is reachable from
# Paris's only if published: see docs/guides/networking.md, "Peers elsewhere".
module "paris" {
  source    = "./modules/api"
  providers = { sdsec = sdsec.paris }
  node      = "api-paris"
  app_path  = var.app_path
  peers     = { "api-lyon" = module.lyon.endpoint }
}

module "lyon" {
  source    = "./modules/api"
  providers = { sdsec = sdsec.lyon }
  node      = "api-lyon"
  app_path  = var.app_path
}

output "endpoints" {
  value = { paris = module.paris.endpoint, lyon = module.lyon.endpoint }
}
