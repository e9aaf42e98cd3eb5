# The id is that of the provider's policy record (the `id` attribute).
terraform import sdsec_security_policy.api pol-3f2a9c0d81b4e675
