"""Management commands of the sandbox app."""
