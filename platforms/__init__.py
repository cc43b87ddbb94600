"""The platforms probed: one adapter per platform, the guarded HTTP client, the network guard (SSRF),
the error classes and secrets at rest. Bottom of the flow: imports no other Vigie package."""
