"""One after-export hook call, sent: the message, its Standard Webhooks signature, and
the POST through the outbound address policy (exports/hooks.py keeps the calls going)."""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime

import requests
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone
from rq.timeouts import JobTimeoutException
from standardwebhooks import Webhook

from exports.api.serializers import run_out
from exports.hooks import Answer, finish
from exports.models import Hook, HookAttempt, HookCall, Run
from exportsite import outbound

logger = logging.getLogger(__name__)

USER_AGENT = "exportsite-hooks/1"


def message(call: HookCall, now: datetime) -> str:
    """The JSON body: the Standard Webhooks envelope around the run's API document
    (docs/api.md, GET /runs/{id}) but its `Worker`, its download URLs signed afresh."""
    run = Run.objects.select_related("export", "connector").prefetch_related("files").get(id=call.run_id)
    data = run_out(run)
    del data["Worker"]  # our machines' names stay ours
    envelope = {"type": call.event, "timestamp": now, "data": data}
    return json.dumps(envelope, cls=DjangoJSONEncoder, separators=(",", ":"))


def headers_for(call: HookCall, secret: str, body: str, now: datetime) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": call.webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(call.webhook_id, now, body),
    }


def post(url: str, body: str, headers: dict[str, str]) -> Answer:
    """One POST under the outbound address policy, without following redirects."""
    timeout = settings.EXPORT_HOOK_TIMEOUT
    try:
        host = outbound.check_url(url, what="the hook URL", bare=False)
        with outbound.guard([host]), requests.Session() as session:
            session.trust_env = False  # no proxy from the environment: the policy checked this address
            response = session.post(
                url, data=body.encode(), headers=headers, timeout=timeout, allow_redirects=False, stream=True
            )
            response.close()  # its body is not read: nothing it says is kept
    except (outbound.AddressNotAllowed, outbound.HostNotFound) as exc:
        return Answer(error=str(exc))
    except requests.exceptions.ConnectTimeout:
        return Answer(error=f"no connection within {timeout} s")
    except requests.exceptions.ReadTimeout:
        return Answer(error=f"no answer within {timeout} s")
    except requests.exceptions.SSLError:
        return Answer(error="the TLS handshake failed: the receiver's certificate could not be verified")
    except requests.exceptions.ConnectionError as exc:
        verdict = outbound.verdict_in(exc)  # a name that resolved elsewhere while connecting
        return Answer(error=str(verdict or "the receiver could not be reached (connection refused or reset)"))
    except requests.exceptions.RequestException as exc:
        return Answer(error=f"the request failed ({type(exc).__name__})")
    answer = Answer(status_code=response.status_code)
    if 300 <= response.status_code < 400:
        answer.error = f"the receiver answered {response.status_code}: redirects are not followed"
    elif not answer.ok:
        answer.error = f"the receiver answered {response.status_code}"
    return answer


def send_attempt(attempt_id: int) -> str:
    """RQ entry point. Safe to run twice: only the job that claims the attempt sends it."""
    now = timezone.now()
    if not HookAttempt.objects.filter(id=attempt_id, started_at__isnull=True).update(started_at=now):
        return "skipped"
    attempt = HookAttempt.objects.select_related("call").get(id=attempt_id)
    call = attempt.call
    if not attempt.manual and not call.is_pending:
        attempt.delete()  # delivered meanwhile by a Send again: nothing to retry
        return "skipped"
    started = time.monotonic()
    try:
        # Read here: a secret that can't be decrypted is this attempt's failure, recorded.
        hooks = Hook.objects.filter(id=call.hook_id) if call.hook_id is not None else Hook.objects.none()
        secret = hooks.values_list("secret", flat=True).first()
        if secret is None:
            answer = Answer(error="the hook was removed: not sent")
        else:
            body = message(call, now)
            headers = headers_for(call, secret, body, now)
            started = time.monotonic()  # the call's own duration, not the message's making
            answer = post(call.url, body, headers)
    except JobTimeoutException:
        answer = Answer(error=f"the call took longer than {settings.HOOK_JOB_TIMEOUT} s in all")
    except Exception as exc:  # a bug, or a key that changed: the call goes on
        logger.exception("hook call %s, attempt %s failed", call.webhook_id, attempt.id)
        answer = Answer(error=f"unexpected error: {type(exc).__name__}")
    finish(attempt, answer, timezone.now(), round((time.monotonic() - started) * 1000))
    logger.info("hook call %s, attempt %s: %s", call.webhook_id, attempt.id, answer.status_code or answer.error)
    return "delivered" if answer.ok else "failed"
