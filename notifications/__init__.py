"""Tell: events made from detection's signals, on-call channels, public subscribers, deliveries
and their retries. May import statuspage, detection, probes and platforms; never oncall or vigie."""
