"""The PyVRP backend: the only modules that import pyvrp (imported lazily, for PyVRP solves)."""
