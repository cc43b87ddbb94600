"""Publish: the public status page, its Statuspage v2 JSON, feeds, badges, the static copy and the
public cache, and API tokens. May import detection, probes and platforms; never oncall,
notifications or vigie."""
