"""The on-call dashboard at /oncall/: staff only, refreshed in place, usable without JavaScript."""
