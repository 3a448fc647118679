"""Long-running operations: the manager, its store and the google.longrunning.Operations service."""
