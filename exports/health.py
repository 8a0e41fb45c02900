"""What a load balancer, a monitor and an operator ask: is it up, is it working, how much.

- `/healthz`: the database and Redis answer (200, else 503 naming what failed). For load
  balancers: no login, nothing about the data.
- `manage.py health`: that, plus the scheduler ticked within HEALTH_SCHEDULER_MAX_AGE
  seconds and at least one worker serves the exports queue; exits non-zero otherwise.
- `/metrics`: Prometheus text. Every figure is read from the database and Redis when
  scraped, so it is the same whichever web server answers and survives restarts (no
  per-process counters to add up). Open to EXPORTSITE_METRICS_TOKEN as a bearer token,
  or, with no token set, to clients in EXPORTSITE_METRICS_NETWORKS only.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import django_rq
from django.conf import settings
from django.db import connection
from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, Q, Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from rq.worker import BaseWorker, WorkerStatus

from exports.models import Run
from exportsite.clientip import client_address

logger = logging.getLogger(__name__)

LAST_TICK = "exportsite:scheduler:last-tick"
DELIVERY_RETRIES = "exportsite:metrics:delivery-retries"

# Run durations, in seconds: from a few seconds to the job timeout's hours.
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)


def _redis():
    return django_rq.get_connection(settings.EXPORTS_QUEUE)


def record_tick() -> None:
    """The scheduler ticked (exports/scheduler.py): `health` and the lag metric read it."""
    _redis().set(LAST_TICK, f"{time.time():.3f}")


def count_delivery_retry() -> None:
    """A store call is tried again (exports/delivery.py); best effort, never fails a run."""
    try:
        _redis().incr(DELIVERY_RETRIES)
    except Exception:  # noqa: BLE001 - a counter must not break the delivery it counts
        pass


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def check_database() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure means the database can't serve
        return Check("database", False, f"{type(exc).__name__}: {exc}".strip())
    return Check("database", True, connection.vendor)


def check_redis() -> Check:
    try:
        _redis().ping()
    except Exception as exc:  # noqa: BLE001 - any failure means Redis can't serve
        return Check("redis", False, f"{type(exc).__name__}: {exc}".strip())
    return Check("redis", True, "ping")


def scheduler_lag() -> float | None:
    """Seconds since a scheduler last ticked; None when none ever did (or Redis forgot)."""
    raw = _redis().get(LAST_TICK)
    return None if raw is None else max(0.0, time.time() - float(raw))


def check_scheduler() -> Check:
    try:
        lag = scheduler_lag()
    except Exception as exc:  # noqa: BLE001 - Redis down: reported by check_redis too
        return Check("scheduler", False, f"cannot read its last tick: {exc}")
    limit = settings.HEALTH_SCHEDULER_MAX_AGE
    if lag is None:
        return Check("scheduler", False, "no scheduler has ticked")
    if lag > limit:
        return Check("scheduler", False, f"last tick {lag:.0f} s ago (more than {limit} s)")
    return Check("scheduler", True, f"last tick {lag:.0f} s ago")


def export_workers() -> list[BaseWorker]:
    """The RQ workers registered for the exports queue (a dead one drops out after its TTL)."""
    return [
        worker
        for worker in BaseWorker.all(connection=_redis())
        if settings.EXPORTS_QUEUE in worker.queue_names() and worker.get_state() != WorkerStatus.SUSPENDED
    ]


def check_workers() -> Check:
    try:
        workers = export_workers()
    except Exception as exc:  # noqa: BLE001 - Redis down: reported by check_redis too
        return Check("workers", False, f"cannot list them: {exc}")
    if not workers:
        return Check("workers", False, f"no worker serves the {settings.EXPORTS_QUEUE!r} queue")
    return Check("workers", True, f"{len(workers)} on the {settings.EXPORTS_QUEUE!r} queue")


def live_checks() -> list[Check]:
    return [check_database(), check_redis()]


def all_checks() -> list[Check]:
    return [*live_checks(), check_scheduler(), check_workers()]


@never_cache
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """Open to anyone: it says which check failed, never why (the reason may name
    internal hosts); the log and `manage.py health` say why."""
    checks = live_checks()
    for check in checks:
        if not check.ok:
            logger.warning("health: %s failing: %s", check.name, check.detail)
    ok = all(check.ok for check in checks)
    return JsonResponse(
        {"status": "ok" if ok else "failing", "checks": {check.name: check.ok for check in checks}},
        status=200 if ok else 503,
    )


class RunsCollector(Collector):
    """The metrics, computed from the database and Redis at each scrape."""

    def collect(self) -> Iterator:
        now = timezone.now()
        by_status = dict(
            Run.objects.order_by().values_list("status").annotate(n=Count("pk")).values_list("status", "n")
        )
        runs = GaugeMetricFamily("exportsite_runs", "Runs by status.", labels=["status"])
        for status in Run.Status.values:
            runs.add_metric([status], by_status.get(status, 0))
        yield runs

        yield self._durations()

        written = Run.objects.filter(status__in=[Run.Status.SUCCEEDED, Run.Status.EXPIRED]).aggregate(
            rows=Sum("row_count"), bytes=Sum("bytes")
        )
        yield CounterMetricFamily(
            "exportsite_rows_written", "Rows in the files of succeeded runs.", value=written["rows"] or 0
        )
        yield CounterMetricFamily(
            "exportsite_bytes_written", "Bytes in the files of succeeded runs.", value=written["bytes"] or 0
        )

        queued = Run.objects.filter(status=Run.Status.QUEUED).aggregate(
            waiting=Count("pk", filter=Q(dispatched_at__isnull=True)),
            dispatched=Count("pk", filter=Q(dispatched_at__isnull=False)),
            oldest=Min("queued_at"),
        )
        depth = GaugeMetricFamily(
            "exportsite_queue_depth",
            "Queued runs: waiting for a place in their organisation's limit, or handed to the workers.",
            labels=["state"],
        )
        depth.add_metric(["waiting"], queued["waiting"])
        depth.add_metric(["dispatched"], queued["dispatched"])
        yield depth
        oldest = queued["oldest"]
        yield GaugeMetricFamily(
            "exportsite_oldest_queued_run_age_seconds",
            "How long the oldest queued run has waited (0 when none waits).",
            value=(now - oldest).total_seconds() if oldest else 0,
        )
        yield CounterMetricFamily(
            "exportsite_run_retries",
            "Runs started again automatically after a failure that may pass.",
            value=Run.objects.filter(trigger=Run.Trigger.RETRY).count(),
        )

        redis = _redis()
        lag = scheduler_lag()
        yield GaugeMetricFamily(
            "exportsite_scheduler_lag_seconds",
            "Seconds since a scheduler last ticked (-1: none has).",
            value=-1 if lag is None else lag,
        )
        yield CounterMetricFamily(
            "exportsite_delivery_retries",
            "Store calls tried again during deliveries (a connection dropped, the store was busy).",
            value=int(redis.get(DELIVERY_RETRIES) or 0),
        )
        yield GaugeMetricFamily(
            "exportsite_workers", "RQ workers serving the exports queue.", value=len(export_workers())
        )

    def _durations(self) -> HistogramMetricFamily:
        took = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
        ended = Run.objects.filter(
            status__in=[Run.Status.SUCCEEDED, Run.Status.EXPIRED, Run.Status.FAILED],
            started_at__isnull=False,
            finished_at__isnull=False,
        ).annotate(took=took)
        figures = ended.aggregate(
            total=Sum("took"),
            count=Count("pk"),
            **{f"le_{bound}": Count("pk", filter=Q(took__lte=timedelta(seconds=bound))) for bound in DURATION_BUCKETS},
        )
        buckets = [(str(float(bound)), figures[f"le_{bound}"]) for bound in DURATION_BUCKETS]
        buckets.append(("+Inf", figures["count"]))
        total = figures["total"]
        return HistogramMetricFamily(
            "exportsite_run_duration_seconds",
            "How long runs that ended took, from start to end.",
            buckets=buckets,
            sum_value=total.total_seconds() if total else 0.0,
        )


def _metrics_allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        return given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), token.encode())
    try:
        address = ipaddress.ip_address(client_address(request))
    except ValueError:
        return False
    return any(address in network for network in settings.METRICS_NETWORKS)


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not _metrics_allowed(request):
        response = HttpResponse("metrics need the bearer token, or a client on an internal network\n", status=403)
        if settings.METRICS_TOKEN:
            response.status_code = 401
            response["WWW-Authenticate"] = "Bearer"
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RunsCollector())
    return HttpResponse(generate_latest(registry), content_type="text/plain; version=0.0.4; charset=utf-8")
