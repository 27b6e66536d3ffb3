"""The database layer: plans and their two drivers, the named SQL and its
catalogue, migrations, sessions, statement deadlines, rows into values, and
the wake-ups sent with NOTIFY. Private: the public API is ``conveyor``."""
