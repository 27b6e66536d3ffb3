"""The operations: each public call written once as a plan (a generator of
statements, no I/O), with the checks of what callers pass in. Both clients,
the worker and the web face run these. Private: the public API is ``conveyor``."""
