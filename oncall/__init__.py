"""On call: the dashboard at /oncall/ (staff only, refreshed in place, usable without JavaScript),
the management API, /metrics and configuration as code (`manage.py config`). May import
notifications, statuspage, detection, probes and platforms; never vigie."""
