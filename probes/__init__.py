"""Measure: platforms, accounts, locations and probes, their schedule, dispatch, the runner, the
recorder, the spool, artifacts and their cleanup, run rollups by hour and day, retention. May
import platforms only; detection hears of stored runs through probes.spool.runs_stored."""
