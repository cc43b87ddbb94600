"""Judge: turns recorded runs into component statuses, incidents, maintenances, own problems,
uptime and rollups, within the write budget. Owns the models the page publishes
(Component, Incident, IncidentUpdate, Maintenance, …). May import probes and platforms only."""
