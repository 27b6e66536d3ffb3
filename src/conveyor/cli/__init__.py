"""The ``conveyor`` command line: ``main`` declares the commands, the other
modules hold the larger groups (jobs, queues, actions, bench), the supervisor
of worker processes and the demo."""
