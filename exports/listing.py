"""The Manage Exports page: four tabs, search, combinable filters and sorting, all in
the query string so a view can be bookmarked and shared."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from django.core.paginator import Page, Paginator
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Subquery
from django.db.models.expressions import Col
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
# What each sort orders on, for exports and for runs (the page's and the API's).
EXPORT_SORT_COLUMNS = {"name": "name", "last_run": "last_run_at", "next_run": "next_run_at"}
RUN_SORT_COLUMNS = {"name": "export__name", "last_run": "queued_at", "next_run": "export__next_run_at"}
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
        return Q(**{f"{prefix}sandbox_id": self.sandbox_id}) & self._export_conditions(prefix)

    def run_filter(self, *, counting: bool = False) -> Q:
        """Runs of the exports `export_filter` lists, in the form that lets the database
        read as few as it can (SQLite has no statistics to choose by):

        - with no search nor filter, by their own sandbox column: the (sandbox, status)
          and (sandbox, queued_at) indexes, without joining the exports;
        - counted, or sorted on an export's column, by their exports' sandbox: the
          database starts from the matching exports (in the sort's order) and reads
          their runs, never every run of the sandbox;
        - sorted on the run's time, with a search or a filter: both, so that PostgreSQL
          may read the runs in order and stop at the page's end.
        """
        if self.sandbox_id is None:
            return Q(pk__in=[])
        conditions = self._export_conditions("export__")
        own, by_export = Q(sandbox_id=self.sandbox_id), Q(export__sandbox_id=self.sandbox_id)
        on_export = RUN_SORT_COLUMNS[self.sort.lstrip("-")].startswith("export__")
        if counting:
            return conditions & by_export if conditions else own
        if on_export:
            return conditions & by_export
        return conditions & by_export & own if conditions else own

    def _export_conditions(self, prefix: str) -> Q:
        condition = Q()
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


class Sorted:
    """A list's ids in the order a sort names, read a window at a time (a Paginator's
    object list). Every part of the order is one an index gives as it is read, forwards
    or backwards, so a page costs what it shows, not what the list holds:

    - ties are broken by id, in the sort's direction;
    - runs sorted on their export's column are grouped by export, in the order queued;
    - a column that may be empty (a next or last run) is read in two parts: the rows
      that have a value, then those that don't, always last. One ORDER BY with
      NULLS LAST can't use the index in one of the two directions on each database.
    """

    def __init__(self, rows: QuerySet, sort: str, columns: dict[str, str]) -> None:
        self.rows = rows
        self.column = columns[sort.lstrip("-")]
        self.descending = sort.startswith("-")
        *joins, name = self.column.split("__")
        model: Any = rows.model
        for join in joins:
            model = model._meta.get_field(join).related_model
        self.nullable = bool(getattr(model._meta.get_field(name), "null", False))
        ties: list[F] = [_JoinedPk(self.column), F("queued_at")] if joins else []
        self.ties = [tie.desc() if self.descending else tie.asc() for tie in [*ties, F("pk")]]

    def count(self) -> int:
        return self.rows.count()

    def _ids(self, rows: QuerySet, *, by_column: bool = True) -> QuerySet:
        column = F(self.column)
        keys = [column.desc() if self.descending else column.asc()] if by_column else []
        return rows.order_by(*keys, *self.ties).values_list("pk", flat=True)

    def __getitem__(self, window: slice) -> list:
        start, stop = window.start or 0, window.stop
        if not self.nullable:
            return list(self._ids(self.rows)[start:stop])
        filled = self._ids(self.rows.filter(**{f"{self.column}__isnull": False}))
        ids = list(filled[start:stop])
        if len(ids) == stop - start:
            return ids
        # The page reaches the rows without a value: they follow the last of the others.
        skip = 0 if ids else start - filled.count()
        empty = self._ids(self.rows.filter(**{f"{self.column}__isnull": True}), by_column=False)
        return ids + list(empty[skip : skip + stop - start - len(ids)])


class _JoinedPk(F):
    """The primary key of the joined row a column such as `export__name` is read from.
    `F("export__pk")` would read the run's own foreign key, which SQLite doesn't see as
    the order in which it reads the exports: it would sort every run."""

    def resolve_expression(self, *args, **kwargs) -> Col:
        column: Any = super().resolve_expression(*args, **kwargs)
        return Col(column.alias, column.target.model._meta.pk)


def with_last_run(exports: QuerySet) -> QuerySet:
    """Each export with its latest run's id and status (`Export.last_run_at` is its
    time), in the same query: for a page of exports, each one index lookup."""
    latest = Run.objects.filter(export=OuterRef("pk")).order_by("-queued_at")
    return exports.annotate(
        last_run_id=Subquery(latest.values("id")[:1]),
        last_run_status=Subquery(latest.values("status")[:1]),
    )


def in_order(ids: Sequence, rows: QuerySet) -> list:
    """The rows of `ids`, in that order. A list's page is chosen by a query that reads
    only what it filters and sorts on; only the page's rows are then read whole, with
    what they show (a join or a subquery per row would otherwise be made for every row
    the sort looks at)."""
    found = {row.pk: row for row in rows.filter(pk__in=list(ids))}
    return [found[pk] for pk in ids if pk in found]


def exports_for(query: ManageQuery, status: str) -> Sorted:
    return Sorted(Export.objects.filter(query.export_filter(), status=status), query.sort, EXPORT_SORT_COLUMNS)


def export_rows(exports: QuerySet) -> QuerySet:
    """What an exports list shows of each export."""
    return with_last_run(exports.select_related("dataset__database", "owner")).annotate(
        has_active_run=Exists(Run.objects.active().filter(export=OuterRef("pk")))
    )


def runs_for(query: ManageQuery, statuses: Sequence[str]) -> Sorted:
    wanted = [s for s in query.statuses if s in statuses] or statuses
    return Sorted(Run.objects.filter(query.run_filter(), status__in=wanted), query.sort, RUN_SORT_COLUMNS)


def run_rows(runs: QuerySet) -> QuerySet:
    """What a runs list shows of each run."""
    return runs.select_related("export__dataset__database", "export__owner")


# Past this many, a runs tab's count reads "10,000+": counting a million runs would cost
# more than the rest of the page.
COUNT_LIMIT = 10_000


def counts(query: ManageQuery) -> dict[str, int]:
    """Every tab's count: the exports' in one pass, each runs tab's up to COUNT_LIMIT + 1."""
    # COUNT(status): the (sandbox, status) indexes answer it without reading the rows.
    exports = Export.objects.filter(query.export_filter()).aggregate(
        draft=Count("status", filter=Q(status=Export.Status.DRAFT)),
        scheduled=Count("status", filter=Q(status=Export.Status.SCHEDULED)),
    )
    runs = Run.objects.filter(query.run_filter(counting=True)).order_by()
    active = [s for s in query.statuses if s in Run.ACTIVE] or list(Run.ACTIVE)
    finished = [s for s in query.statuses if s in FINISHED] or FINISHED
    return {
        **exports,
        "in_progress": runs.filter(status__in=active).values("status")[: COUNT_LIMIT + 1].count(),
        "finished": runs.filter(status__in=finished).values("status")[: COUNT_LIMIT + 1].count(),
    }


def page_of(query: ManageQuery, counts: dict[str, int]) -> Page:
    if query.tab == "draft":
        rows, read = exports_for(query, Export.Status.DRAFT), export_rows(Export.objects.all())
    elif query.tab == "scheduled":
        rows, read = exports_for(query, Export.Status.SCHEDULED), export_rows(Export.objects.all())
    elif query.tab == "in_progress":
        rows, read = runs_for(query, list(Run.ACTIVE)), run_rows(Run.objects.all())
    else:
        rows, read = runs_for(query, FINISHED), run_rows(Run.objects.all())
    paginator: Paginator = Paginator(cast(Any, rows), PAGE_SIZE)  # it slices: a window of ids
    count = counts[query.tab]  # counted already, with the same filters
    if count > COUNT_LIMIT:  # not counted to the end: there is always a next page to try
        count = max(count, int(query.page) * PAGE_SIZE + 1)
    paginator.__dict__["count"] = count
    page = paginator.get_page(query.page)
    page.object_list = in_order(cast(list, page.object_list), read)
    return page


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
