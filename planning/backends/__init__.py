"""Solver back-ends of the planner (the facility-location MIP)."""
