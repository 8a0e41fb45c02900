"""`manage.py sftpd`: the hosted SFTP server. Stops cleanly on SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio

from django.conf import settings
from django.core.management.base import BaseCommand

from connectors.sftpd import serve


class Command(BaseCommand):
    help = "Serve hosted SFTP: each user with a hosted SFTP connector sees only their own zone."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.SFTPD_BIND, help="address to listen on")
        parser.add_argument("--port", type=int, default=settings.SFTPD_PORT, help="port to listen on")

    def handle(self, *args, host: str, port: int, **options):
        def ready():
            self.stdout.write(f"sftpd ready on {host}:{port}")
            self.stdout.flush()

        asyncio.run(serve(host, port, ready=ready))
