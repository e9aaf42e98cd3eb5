terraform {
  required_providers {
    sdsec = {
      source = "sdsec/sdsec"
    }
  }
}

# The embedded default: QEMU started directly, images and records under ./sdsec-state.
provider "sdsec" {
  state_dir = "${path.root}/sdsec-state"
  site      = "paris"
  tenant    = "shop"
  trust     = "trusted"
}

# A remote libvirt host, with an alias.
provider "sdsec" {
  alias       = "lyon"
  hypervisor  = "libvirt"
  libvirt_uri = "qemu+ssh://lyon.example.net/system"
  state_dir   = "${path.root}/sdsec-state-lyon"
  site        = "lyon"
  trust       = "shared"
}
