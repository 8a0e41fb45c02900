"""The Manage Exports page: four tabs, search, combinable filters and sorting, all in
the query string so a view can be bookmarked and shared."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.core.paginator import Page, Paginator
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Subquery
from django.http import QueryDict

from exports.models import Database, Dataset, Export, Run

TABS = {
    "draft": "Draft",
    "scheduled": "Scheduled",
    "in_progress": "In progress",
    "finished": "Finished",
}
FINISHED = [Run.Status.SUCCEEDED, Run.Status.FAILED, Run.Status.CANCELLED, Run.Status.EXPIRED]
SORTS = {"name": "name", "last_run": "last run", "next_run": "next run"}
PAGE_SIZE = 25
# ASCII digits only (`"²".isdigit()` is true), and small enough for any database's integer.
_DATABASE_ID = re.compile(r"[0-9]{1,18}")
_PAGE = re.compile(r"[0-9]{1,9}")


def _printable(text: str) -> str:
    return text.replace("\x00", "").encode("utf-8", "ignore").decode("utf-8")


@dataclass
class ManageQuery:
    # The sandbox whose exports and runs are listed: nothing of any other, ever.
    sandbox_id: int | None = None
    tab: str = "draft"
    q: str = ""
    databases: list[int] = field(default_factory=list)
    # Sequences: the API passes its lists of Literal choices.
    data_types: Sequence[str] = field(default_factory=list)
    export_types: Sequence[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    sort: str = "-last_run"
    page: str = "1"

    @classmethod
    def from_request(cls, params: QueryDict, sandbox_id: int) -> ManageQuery:
        """Read the query string; anything unknown or malformed is dropped, never an error."""
        tab = params.get("tab", "draft")
        sort = params.get("sort", "-last_run")
        return cls(
            sandbox_id=sandbox_id,
            tab=tab if tab in TABS else "draft",
            # NUL can't go into a PostgreSQL query; lone surrogates can't be encoded.
            q=_printable(params.get("q", "")).strip()[:200],
            databases=[int(v) for v in params.getlist("database") if _DATABASE_ID.fullmatch(v)],
            data_types=[v for v in params.getlist("data_type") if v in Dataset.DataType.values],
            export_types=[v for v in params.getlist("export_type") if v in Export.TYPE_LABELS],
            statuses=[v for v in params.getlist("status") if v in Run.Status.values],
            sort=sort if sort.lstrip("-") in SORTS else "-last_run",
            page=params.get("page", "1") if _PAGE.fullmatch(params.get("page", "1")) else "1",
        )

    def export_filter(self, prefix: str = "") -> Q:
        if self.sandbox_id is None:
            return Q(pk__in=[])  # no sandbox, nothing listed
        condition = Q(**{f"{prefix}sandbox_id": self.sandbox_id})
        if self.q:
            condition &= Q(**{f"{prefix}name__icontains": self.q})
        if self.databases:
            condition &= Q(**{f"{prefix}dataset__database__in": self.databases})
        if self.data_types:
            condition &= Q(**{f"{prefix}dataset__data_type__in": self.data_types})
        if self.export_types:
            condition &= _shown_type_in(self.export_types, prefix)
        return condition


def _shown_type_in(types: Sequence[str], prefix: str) -> Q:
    """Exports whose `Export.shown_type` is one of `types`, as a query."""

    def q(**lookups) -> Q:
        return Q(**{f"{prefix}{name}": value for name, value in lookups.items()})

    custom = q(managed=True)
    plain_incremental = q(export_type=Export.Type.INCREMENTAL) & ~q(dataset__kind=Dataset.Kind.QUERY)
    matching = Q(pk__in=[])
    standard = [kind for kind in types if kind in Export.Type.values]
    if standard:
        matching |= q(managed=False, export_type__in=standard)
    if Export.CUSTOM in types:
        matching |= custom & ~plain_incremental
    if Export.INCREMENTAL_CUSTOM in types:
        matching |= custom & plain_incremental
    return matching


def order_rows(queryset: QuerySet, sort: str, **columns: str) -> QuerySet:
    column = columns[sort.lstrip("-")]
    expression = F(column).desc(nulls_last=True) if sort.startswith("-") else F(column).asc(nulls_last=True)
    return queryset.order_by(expression, "pk")


def with_last_run(exports: QuerySet) -> QuerySet:
    """Each export with its latest run's time, id and status, in the same query."""
    latest = Run.objects.filter(export=OuterRef("pk")).order_by("-queued_at")
    return exports.annotate(
        last_run_at=Subquery(latest.values("queued_at")[:1]),
        last_run_id=Subquery(latest.values("id")[:1]),
        last_run_status=Subquery(latest.values("status")[:1]),
    )


def exports_for(query: ManageQuery, status: str) -> QuerySet:
    queryset = with_last_run(
        Export.objects.filter(query.export_filter(), status=status).select_related("dataset__database", "owner")
    ).annotate(has_active_run=Exists(Run.objects.active().filter(export=OuterRef("pk"))))
    return order_rows(queryset, query.sort, name="name", last_run="last_run_at", next_run="next_run_at")


def runs_for(query: ManageQuery, statuses: Sequence[str]) -> QuerySet:
    wanted = [s for s in query.statuses if s in statuses] or statuses
    queryset = Run.objects.filter(query.export_filter("export__"), status__in=wanted).select_related(
        "export__dataset__database", "export__owner"
    )
    return order_rows(queryset, query.sort, name="export__name", last_run="queued_at", next_run="export__next_run_at")


def counts(query: ManageQuery) -> dict[str, int]:
    """Every tab's count in two queries: one pass over exports, one over runs."""
    exports = Export.objects.filter(query.export_filter()).aggregate(
        draft=Count("pk", filter=Q(status=Export.Status.DRAFT)),
        scheduled=Count("pk", filter=Q(status=Export.Status.SCHEDULED)),
    )
    active = [s for s in query.statuses if s in Run.ACTIVE] or list(Run.ACTIVE)
    finished = [s for s in query.statuses if s in FINISHED] or FINISHED
    runs = Run.objects.filter(query.export_filter("export__")).aggregate(
        in_progress=Count("pk", filter=Q(status__in=active)),
        finished=Count("pk", filter=Q(status__in=finished)),
    )
    return {**exports, **runs}


def page_of(query: ManageQuery, counts: dict[str, int]) -> Page:
    if query.tab == "draft":
        rows = exports_for(query, Export.Status.DRAFT)
    elif query.tab == "scheduled":
        rows = exports_for(query, Export.Status.SCHEDULED)
    elif query.tab == "in_progress":
        rows = runs_for(query, list(Run.ACTIVE))
    else:
        rows = runs_for(query, FINISHED)
    paginator = Paginator(rows, PAGE_SIZE)
    paginator.__dict__["count"] = counts[query.tab]  # counted already, with the same filters
    return paginator.get_page(query.page)


def sidebar_choices(sandbox_id: int) -> dict:
    return {
        "databases": Database.objects.filter(sandbox_id=sandbox_id).order_by("name").values_list("id", "name"),
        "data_types": Dataset.DataType.choices,
        "export_types": list(Export.TYPE_LABELS.items()),
        "statuses": {
            "in_progress": [(s, Run.Status(s).label) for s in Run.ACTIVE],
            "finished": [(s, Run.Status(s).label) for s in FINISHED],
        },
    }
