"""The management API (DRF): token-authenticated reads and writes over what the page shows."""
