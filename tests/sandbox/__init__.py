"""Tests of the bundled sandbox platform."""
