"""The HTTP API, /api/v1/: everything the UI does with exports, for automation.

A request acts as its token's owner, with the roles of exports/permissions.py. It sees
the exports it owns (admins see everyone's); anyone else's export is a 404, exactly as
if it did not exist."""

from __future__ import annotations

import json
from typing import Annotated, Literal
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.http import content_disposition_header
from ninja import Field, NinjaAPI, Query, Schema, Status, Swagger
from ninja.responses import codes_4xx

from connectors.errors import DestinationError, Problem
from connectors.models import Connector
from exports import manage
from exports.api import schemas as s
from exports.api.auth import TokenAuth, TokenRateThrottle
from exports.api.definitions import save_definition
from exports.api.errors import ApiError, ErrorOut, install_handlers, not_found
from exports.api.serializers import (
    EXPORT_STATUS_VALUES,
    RUN_STATUS_VALUES,
    connector_out,
    dataset_out,
    export_out,
    has_files_to_serve,
    run_out,
)
from exports.api.signing import check_signature
from exports.models import Dataset, Export, Run, time_zone_of
from exports.permissions import can_change, can_create, is_admin
from exports.runs import LaunchRefused, cancel_run, launch_export


class LocalSwagger(Swagger):
    """Swagger UI from our static files (ninja only serves its own copy when it is an
    installed app, which we avoid: see STATICFILES_DIRS), never from a CDN."""

    def render_page(self, request, api, **kwargs):
        self.settings["url"] = self.get_openapi_url(api, kwargs)
        return render(request, "exports/api_docs.html", {"api": api, "swagger_settings": json.dumps(self.settings)})


api = NinjaAPI(
    title="Export site API",
    version="1",
    urls_namespace="api-1",
    description="Define, launch, schedule and follow data exports. Authenticate with "
    "`Authorization: Bearer <token>`; create tokens on your profile page. See docs/api.md.",
    auth=TokenAuth(),
    throttle=TokenRateThrottle(),
    docs=LocalSwagger(),
)
install_handlers(api)

ERRORS = {code: ErrorOut for code in codes_4xx}

MAX_ID = 2**62

DbId = Annotated[int, Field(ge=1, le=MAX_ID)]


# Who sees what -------------------------------------------------------------------


def exports_queryset(user) -> QuerySet:
    visible = Export.objects.all() if is_admin(user) else Export.objects.filter(owner=user)
    return manage.with_last_run(visible.select_related("dataset__database", "owner"))


def runs_queryset(user) -> QuerySet:
    visible = Run.objects.all() if is_admin(user) else Run.objects.filter(export__owner=user)
    return visible.select_related("export__dataset__database", "export__owner").prefetch_related("files")


def _get_export(request, export_id, *, write: bool = False) -> Export:
    export = exports_queryset(request.user).filter(id=export_id).first()
    if export is None:
        raise not_found("export")
    if write and not can_change(request.user, export):
        raise ApiError(403, "FORBIDDEN", "your role may not change exports (marketers change their own)")
    return export


def _get_run(request, run_id, *, write: bool = False) -> Run:
    run = runs_queryset(request.user).filter(id=run_id).first()
    if run is None:
        raise not_found("run")
    if write and not can_change(request.user, run.export):
        raise ApiError(403, "FORBIDDEN", "your role may not change exports (marketers change their own)")
    return run


def _reread(request, export: Export) -> dict:
    return export_out(exports_queryset(request.user).get(id=export.id))


def _reread_run(request, run: Run) -> dict:
    return run_out(runs_queryset(request.user).get(id=run.id), request)


# Lists ---------------------------------------------------------------------------


class Paging(Schema):
    page: int = Field(1, ge=1, le=1_000_000)
    page_size: int = Field(50, ge=1, le=1_000_000, description="Capped at API_MAX_PAGE_SIZE (default 200)")


def _page(queryset: QuerySet, paging: Paging, serialize) -> dict:
    size = min(paging.page_size, settings.API_MAX_PAGE_SIZE)
    count = queryset.count()
    start = (paging.page - 1) * size
    rows = list(queryset[start : start + size]) if start < count else []
    return {
        "Items": [serialize(row) for row in rows],
        "Count": count,
        "Page": paging.page,
        "PageSize": size,
        "NextPage": paging.page + 1 if start + size < count else None,
    }


class DatasetFilters(Paging):
    database: list[DbId] = Field([], description="Database ids (repeat the parameter for several)")
    data_type: list[s.DataTypeChoice] = []


@api.get("/datasets", response={200: s.DatasetPage, **ERRORS}, tags=["datasets"])
def list_datasets(request, filters: Query[DatasetFilters]):
    """Datasets an export can read: their database, data type and columns."""
    queryset = Dataset.objects.select_related("database").order_by("database__name", "schema_name", "name", "id")
    if filters.database:
        queryset = queryset.filter(database__in=filters.database)
    if filters.data_type:
        queryset = queryset.filter(data_type__in=filters.data_type)
    return _page(queryset, filters, dataset_out)


@api.get("/connectors", response={200: s.ConnectorPage, **ERRORS}, tags=["connectors"])
def list_connectors(request, paging: Query[Paging]):
    """Destinations an export can deliver to. Never their credentials."""
    queryset = Connector.objects.exclude(kind=Connector.Kind.DESKTOP).select_related("owner").order_by("name", "id")
    return _page(queryset, paging, connector_out)


class ManageFilters(Paging):
    """The Manage Exports page's filters, combinable."""

    q: s.Text = Field("", max_length=200, description="Part of the name")
    database: list[DbId] = []
    data_type: list[s.DataTypeChoice] = []
    export_type: list[s.ExportTypeChoice] = []


class ExportFilters(ManageFilters):
    status: list[s.ExportStatusChoice] = Field([], description="Draft, Scheduled (tabs), Finished, Expired")
    sort: Literal["name", "-name", "last_run", "-last_run", "next_run", "-next_run"] = "-last_run"


def _manage_query(filters: ManageFilters, sort: str) -> manage.ManageQuery:
    return manage.ManageQuery(
        q=filters.q.strip(),
        databases=filters.database,
        data_types=filters.data_type,
        export_types=filters.export_type,
        sort=sort,
    )


@api.get("/exports", response={200: s.ExportPage, **ERRORS}, tags=["exports"])
def list_exports(request, filters: Query[ExportFilters]):
    """Your exports (admins: everyone's), with the Draft and Scheduled tabs' filters."""
    query = _manage_query(filters, filters.sort)
    queryset = exports_queryset(request.user).filter(query.export_filter())
    if filters.status:
        queryset = queryset.filter(status__in=[EXPORT_STATUS_VALUES[status] for status in filters.status])
    queryset = manage.order_rows(queryset, query.sort, name="name", last_run="last_run_at", next_run="next_run_at")
    return _page(queryset, filters, export_out)


@api.post("/exports", response={201: s.ExportOut, **ERRORS}, tags=["exports"])
def create_export(request, payload: s.ExportIn):
    """A new export, validated as the wizard validates it. A one-shot with `Launch` is
    launched at once (see the 409 rule under launch)."""
    if not can_create(request.user):
        raise ApiError(403, "FORBIDDEN", "viewers can't create exports")
    given = payload.model_dump(exclude_unset=True, exclude={"Launch", "QueueAnyway"})
    with transaction.atomic():
        export = save_definition(Export(owner=request.user), given, time_zone=time_zone_of(request.user))
        if payload.Launch:
            _launch(request, export, queue_anyway=payload.QueueAnyway)
    return Status(201, _reread(request, export))


def _lookup(queryset: QuerySet, ids: list[UUID], serialize) -> dict:
    """Rows by id, in the order asked, each once; the ids not found (or not visible) apart."""
    found = {row.id: row for row in queryset.filter(id__in=ids)}
    wanted = dict.fromkeys(ids)
    return {
        "Items": [serialize(found[i]) for i in wanted if i in found],
        "NotFound": [i for i in wanted if i not in found],
    }


@api.post("/exports/lookup", response={200: s.ExportLookup, **ERRORS}, tags=["exports"])
def lookup_exports(request, payload: s.IdsIn):
    """Up to 1,000 exports by id in one request; ids you can't see are listed in NotFound."""
    return _lookup(exports_queryset(request.user), payload.Ids, export_out)


@api.get("/exports/{export_id}", response={200: s.ExportOut, **ERRORS}, tags=["exports"])
def get_export(request, export_id: UUID):
    return export_out(_get_export(request, export_id))


@api.patch("/exports/{export_id}", response={200: s.ExportOut, **ERRORS}, tags=["exports"])
def update_export(request, export_id: UUID, payload: s.ExportPatch):
    """Change a draft: only the fields sent change, and the whole definition is validated again."""
    export = _get_export(request, export_id, write=True)
    if not export.is_draft:
        raise ApiError(409, "NOT_A_DRAFT", "only drafts can be edited: unschedule the export first")
    with transaction.atomic():
        save_definition(export, payload.model_dump(exclude_unset=True), time_zone=time_zone_of(request.user))
    return _reread(request, export)


@api.delete("/exports/{export_id}", response={204: None, **ERRORS}, tags=["exports"])
def delete_export(request, export_id: UUID):
    """Delete a draft, with its runs."""
    export = _get_export(request, export_id, write=True)
    if not export.is_draft:
        raise ApiError(409, "NOT_A_DRAFT", "only drafts can be deleted: unschedule the export first")
    if export.runs.filter(status__in=Run.ACTIVE).exists():
        raise ApiError(409, "RUN_IN_PROGRESS", "a run of this export is in progress: cancel it first")
    export.delete()
    return Status(204, None)


@api.post("/exports/{export_id}/copy", response={201: s.ExportOut, **ERRORS}, tags=["exports"])
def copy_export(request, export_id: UUID, payload: s.CopyIn):
    """A new draft with the same definition."""
    export = _get_export(request, export_id, write=True)
    if export.status == Export.Status.EXPIRED:
        raise ApiError(409, "EXPIRED", "an expired export can't be copied")
    name = (payload.Name if payload.Name is not None else f"Copy of {export.name}").strip()[:200]
    if not name:
        raise ApiError(400, "VALIDATION_FAILED", "Name: the copy needs a name", fields={"Name": ["can't be blank"]})
    copy = export.copy(name=name, owner=request.user)
    return Status(201, _reread(request, copy))


def _already_running(run_id) -> ApiError:
    return ApiError(409, "ALREADY_RUNNING", "this export already has a run queued or running", run_id=run_id)


def _launch(request, export: Export, *, queue_anyway: bool, trigger: str = Run.Trigger.API) -> Run:
    """Launch a one-shot. Refused (409) while the same user has a run of the same
    dataset queued or running, unless `queue_anyway`; never two runs of one export."""
    if export.export_type != Export.Type.ONE_SHOT:
        raise ApiError(
            409, "NOT_ONE_SHOT", "only one-shot exports are launched; schedule a repeating one, then run-now"
        )
    active = export.runs.filter(status__in=Run.ACTIVE).first()
    if active is not None:
        raise _already_running(active.id)
    if not queue_anyway:
        busy = (
            Run.objects.filter(status__in=Run.ACTIVE, export__dataset_id=export.dataset_id)
            .filter(Q(launched_by=request.user) | Q(export__owner=request.user))
            .first()
        )
        if busy is not None:
            raise ApiError(
                409,
                "DATASET_BUSY",
                f"you already have a run of {export.dataset.qualified_name} queued or running ({busy.id}); "
                "send QueueAnyway: true to queue this one anyway",
                run_id=busy.id,
            )
    try:
        run, created = launch_export(export, user=request.user, trigger=trigger)
    except LaunchRefused as exc:
        raise ApiError(409, "CANNOT_LAUNCH", str(exc)) from None
    if not created:
        raise _already_running(run.id)
    return run


@api.post("/exports/{export_id}/launch", response={202: s.RunOut, **ERRORS}, tags=["exports"])
def launch(request, export_id: UUID, payload: s.LaunchIn | None = None):
    """Queue a run of a one-shot export now."""
    export = _get_export(request, export_id, write=True)
    with transaction.atomic():
        run = _launch(request, export, queue_anyway=bool(payload and payload.QueueAnyway))
    return Status(202, _reread_run(request, run))


@api.post("/exports/{export_id}/schedule", response={200: s.ExportOut, **ERRORS}, tags=["exports"])
def schedule(request, export_id: UUID):
    """Draft -> Scheduled: repeating exports run by themselves; a one-shot with a start waits for it."""
    export = _get_export(request, export_id, write=True)
    if not export.is_draft:
        raise ApiError(409, "NOT_A_DRAFT", "only drafts can be scheduled")
    try:
        if not export.schedule():
            raise ApiError(409, "NOT_A_DRAFT", "only drafts can be scheduled")
    except ValueError as exc:
        raise ApiError(409, "CANNOT_SCHEDULE", f"can't schedule it: {exc}; change its Start or End") from None
    return _reread(request, export)


@api.post("/exports/{export_id}/unschedule", response={200: s.ExportOut, **ERRORS}, tags=["exports"])
def unschedule(request, export_id: UUID):
    """Scheduled -> Draft. A run in progress finishes; the watermark is kept."""
    export = _get_export(request, export_id, write=True)
    if not export.unschedule():
        raise ApiError(409, "NOT_SCHEDULED", "only scheduled exports can be unscheduled")
    return _reread(request, export)


@api.post("/exports/{export_id}/run-now", response={202: s.RunOut, **ERRORS}, tags=["exports"])
def run_now(request, export_id: UUID):
    """Start a scheduled export's next run now (incremental: from its watermark); later
    runs keep their times."""
    from exports.scheduler import schedule_due

    export = _get_export(request, export_id, write=True)
    if not export.is_scheduled:
        raise ApiError(409, "NOT_SCHEDULED", "only scheduled exports run now; launch a one-shot draft instead")
    active = export.runs.filter(status__in=Run.ACTIVE).first()
    if active is not None:
        raise _already_running(active.id)
    if export.dataset.missing_since is not None:
        raise ApiError(409, "CANNOT_LAUNCH", f"the dataset {export.dataset.qualified_name} no longer exists")
    export.run_now()
    run = schedule_due(export.id, timezone.now(), trigger=Run.Trigger.API)
    if run is None:  # a scheduler tick took the slot between our check and now: that run is this run
        run = export.runs.filter(status__in=Run.ACTIVE).first()
        if run is None:
            raise ApiError(409, "CONFLICT", "the export changed meanwhile; read it again")
    return Status(202, _reread_run(request, run))


@api.post("/exports/{export_id}/reset-watermark", response={200: s.ExportOut, **ERRORS}, tags=["exports"])
def reset_watermark(request, export_id: UUID):
    """Incremental: the next run exports every row again."""
    export = _get_export(request, export_id, write=True)
    if not export.is_incremental:
        raise ApiError(409, "NOT_INCREMENTAL", "only incremental exports have a watermark")
    export.reset_watermark()
    return _reread(request, export)


# Runs ----------------------------------------------------------------------------


class RunFilters(ManageFilters):
    status: list[s.RunStatusChoice] = Field([], description="Pending and Processing: In progress; the rest: Finished")
    sort: Literal["name", "-name", "last_run", "-last_run", "next_run", "-next_run"] = "-last_run"


def _runs(queryset: QuerySet, filters: RunFilters, request) -> dict:
    query = _manage_query(filters, filters.sort)
    queryset = queryset.filter(query.export_filter("export__"))
    if filters.status:
        queryset = queryset.filter(status__in=[RUN_STATUS_VALUES[status] for status in filters.status])
    queryset = manage.order_rows(
        queryset, query.sort, name="export__name", last_run="queued_at", next_run="export__next_run_at"
    )
    return _page(queryset, filters, lambda run: run_out(run, request))


@api.get("/runs", response={200: s.RunPage, **ERRORS}, tags=["runs"])
def list_runs(request, filters: Query[RunFilters]):
    """Runs of your exports, with the In progress and Finished tabs' filters."""
    return _runs(runs_queryset(request.user), filters, request)


@api.get("/exports/{export_id}/runs", response={200: s.RunPage, **ERRORS}, tags=["runs"])
def list_export_runs(request, export_id: UUID, filters: Query[RunFilters]):
    export = _get_export(request, export_id)
    return _runs(runs_queryset(request.user).filter(export=export), filters, request)


@api.post("/runs/lookup", response={200: s.RunLookup, **ERRORS}, tags=["runs"])
def lookup_runs(request, payload: s.IdsIn):
    """Up to 1,000 runs by id in one request; ids you can't see are listed in NotFound."""
    return _lookup(runs_queryset(request.user), payload.Ids, lambda run: run_out(run, request))


@api.get("/runs/{run_id}", response={200: s.RunOut, **ERRORS}, tags=["runs"])
def get_run(request, run_id: UUID):
    """A run's report; once it succeeded, its files with signed download URLs."""
    return run_out(_get_run(request, run_id), request)


@api.post("/runs/{run_id}/cancel", response={200: s.RunOut, **ERRORS}, tags=["runs"])
def cancel(request, run_id: UUID):
    """Cancel a pending or processing run: nothing is delivered."""
    run = _get_run(request, run_id, write=True)
    if not cancel_run(run):
        raise ApiError(409, "NOT_IN_PROGRESS", f"the run is {run.get_status_display().lower()}, not in progress")
    return _reread_run(request, run)


@api.post("/runs/{run_id}/relaunch", response={202: s.RunOut, **ERRORS}, tags=["runs"])
def relaunch(request, run_id: UUID):
    """Run a failed run again, after fixing its cause (credentials, a bucket, a host key...)."""
    run = _get_run(request, run_id, write=True)
    if not run.is_relaunchable:
        raise ApiError(409, "NOT_RELAUNCHABLE", "only runs that failed for a reason a relaunch can fix are relaunched")
    try:
        with transaction.atomic():
            new_run, created = launch_export(
                run.export, user=request.user, trigger=Run.Trigger.RELAUNCH, relaunch_of=run
            )
    except LaunchRefused as exc:
        raise ApiError(409, "CANNOT_LAUNCH", str(exc)) from None
    if not created:
        raise _already_running(new_run.id)
    return Status(202, _reread_run(request, new_run))


# Signed downloads ------------------------------------------------------------------

_FILE_RESPONSES = {
    200: {
        "description": "The file's bytes",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@api.get(
    "/files/{run_id}/{part}",
    auth=None,
    throttle=[],
    response={**ERRORS, 502: ErrorOut},
    openapi_extra={"responses": _FILE_RESPONSES},
    url_name="api-file",
    tags=["runs"],
)
def download_file(
    request,
    run_id: UUID,
    part: Annotated[int, Field(ge=1, le=1_000_000)],
    expires: Annotated[int, Field(ge=0, le=2**40)],
    signature: Annotated[str, Field(max_length=200)],
):
    """One file of a run, through the signed URL in the run's `Files` (no token needed).
    The URL stops working when it expires, or when the run's files do."""
    problem = check_signature(run_id, part, expires, signature)
    if problem == "INVALID_SIGNATURE":
        raise ApiError(403, problem, "this download URL is not valid (it was changed, or not issued by us)")
    if problem == "URL_EXPIRED":
        raise ApiError(403, problem, "this download URL has expired: read the run again for a fresh one")
    run = Run.objects.select_related("export__connector", "export__dataset").filter(id=run_id).first()
    run_file = run.files.filter(part=part).first() if run else None
    if run is None or run_file is None:
        raise ApiError(404, "NOT_FOUND", "this run or file no longer exists")
    if not has_files_to_serve(run):
        raise ApiError(410, "RUN_EXPIRED", f"the run is {run.get_status_display().lower()}: its files are gone")
    chunks = _file_chunks(run, run_file)
    try:
        first = next(chunks, b"")
    except DestinationError as exc:
        if exc.problem == Problem.NOT_FOUND:
            raise ApiError(410, "FILE_GONE", f"the file is no longer in the destination: {exc.message}") from None
        raise ApiError(502, "DESTINATION_UNAVAILABLE", f"the destination failed: {exc.message}") from None
    except FileNotFoundError:
        raise ApiError(410, "FILE_GONE", "the file is no longer stored") from None

    def stream():
        yield first
        yield from chunks

    response = StreamingHttpResponse(stream(), content_type="application/octet-stream")
    response["Content-Length"] = str(run_file.size_bytes)
    response["Content-Disposition"] = content_disposition_header(True, run_file.name)
    return response


def _file_chunks(run: Run, run_file):
    from connectors.storage import open_destination
    from exports.delivery import desktop_chunks

    if run.export.connector is None:
        yield from desktop_chunks(run_file.path)
        return
    with open_destination(run.export.connector) as destination:
        yield from destination.read_chunks(destination.name_of(run_file.path))
