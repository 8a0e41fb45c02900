"""Report e-mails: an export's recipients hear about every failed run, and about
successful ones when the export asks for it."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string

from exports.actions import next_attempt
from exports.models import Run, recipients_of
from orgs.scope import site_reverse

logger = logging.getLogger(__name__)


def notify_run(run: Run) -> bool:
    """Send the report of a finished run to the export's recipients; True if sent."""
    export = run.export
    to = recipients_of(export)
    wanted = run.is_failed or (run.is_succeeded and export.notify_on_success)
    if not to or not wanted:
        return False
    outcome = f"failed ({run.error_code})" if run.is_failed else "succeeded"
    context = {
        "run": run,
        "export": export,
        "files": run.files.all(),
        "next_attempt": next_attempt(run),
        # From a worker: the run's own sandbox in the link, whichever the reader was last in.
        "url": settings.SITE_URL + site_reverse("runs-detail", sandbox=export.sandbox, args=[run.id]),
    }
    try:
        send_mail(
            subject=f"[Exports] {export.name}: run {outcome}",
            message=render_to_string("exports/email/run_report.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=to,
        )
    except Exception:
        logger.exception("run %s: the report e-mail could not be sent", run.id)
        return False
    return True
