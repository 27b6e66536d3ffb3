"""``python manage.py conveyor_worker``: run the handlers of ``CONVEYOR["tasks"]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from conveyor.contrib.django import get_client, import_tasks


class Command(BaseCommand):
    help = ("Run Conveyor workers for the handlers registered by the modules in "
            "CONVEYOR['tasks'], until SIGTERM or Ctrl-C.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--queues", nargs="+", metavar="QUEUE",
                            help="run only these queues' handlers (default: all)")
        parser.add_argument("--concurrency", type=int,
                            help="handler calls at once per queue, overriding each one's")

    def handle(self, *args: Any, **options: Any) -> None:
        import_tasks()
        client = get_client()
        self.stdout.write(f"conveyor: working on schema {client.schema!r}")
        client.run(queues=options["queues"], concurrency=options["concurrency"])
