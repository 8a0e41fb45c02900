"""The HTTP API, /api/v1/: everything the UI does with exports, for automation.

A request acts as its token's owner, with the roles of exports/permissions.py, in the
token's sandbox and nowhere else. It sees the exports it owns there (admins see
everyone's); any other export, in this sandbox or any other, is a 404, exactly as if it
did not exist."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any, Literal
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils.http import content_disposition_header
from ninja import Field, NinjaAPI, Query, Schema, Status, Swagger
from ninja.responses import codes_4xx

from connectors.errors import DestinationError, Problem
from connectors.models import Connector
from connectors.storage import open_destination
from exports import actions, listing
from exports.api import schemas as s
from exports.api.auth import TokenAuth, TokenRateThrottle, TokenRequest
from exports.api.definitions import save_definition
from exports.api.errors import ApiError, ErrorOut, install_handlers, not_found
from exports.api.serializers import (
    EXPORT_STATUS_VALUES,
    RUN_STATUS_VALUES,
    connector_out,
    dataset_out,
    export_out,
    has_files_to_serve,
    hook_call_out,
    hook_out,
    run_out,
)
from exports.api.signing import check_signature
from exports.delivery import desktop_chunks
from exports.models import Dataset, Export, Run, RunFile, time_zone_of
from exports.permissions import is_admin

if TYPE_CHECKING:
    pass


class LocalSwagger(Swagger):
    """Swagger UI from our static files (ninja only serves its own copy when it is an
    installed app, which we avoid: see STATICFILES_DIRS), never from a CDN."""

    def render_page(self, request: HttpRequest, api: NinjaAPI, **kwargs: Any) -> HttpResponse:
        self.settings["url"] = self.get_openapi_url(api, kwargs)
        # No deep links: they put a link inside each operation's button, which screen
        # readers can't reach (axe-core: nested-interactive).
        self.settings["deepLinking"] = False
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


def exports_queryset(request: TokenRequest) -> QuerySet:
    visible = actions.exports_in(request.sandbox_scope.sandbox_id)
    if not is_admin(request.user, request.sandbox_scope.sandbox_id):
        # Their own, and the custom exports operators set up for the sandbox (read-only).
        visible = visible.filter(Q(owner=request.user) | Q(managed=True))
    return listing.export_rows(visible)


def runs_queryset(request: TokenRequest) -> QuerySet:
    visible = actions.runs_in(request.sandbox_scope.sandbox_id)
    if not is_admin(request.user, request.sandbox_scope.sandbox_id):
        visible = visible.filter(Q(export__owner=request.user) | Q(export__managed=True))
    return listing.run_rows(visible).prefetch_related("files")


def _get_export(request: TokenRequest, export_id: UUID) -> Export:
    """An export the token may see; permission to change it is the action's to check."""
    export = exports_queryset(request).filter(id=export_id).first()
    if export is None:
        raise not_found("export")
    return export


def _get_run(request: TokenRequest, run_id: UUID) -> Run:
    run = runs_queryset(request).filter(id=run_id).first()
    if run is None:
        raise not_found("run")
    return run


def _reread(request: TokenRequest, export: Export) -> dict:
    return export_out(exports_queryset(request).get(id=export.id))


def _reread_run(request: TokenRequest, run: Run) -> dict:
    return run_out(runs_queryset(request).get(id=run.id))


# Lists ---------------------------------------------------------------------------


class Paging(Schema):
    page: int = Field(1, ge=1, le=1_000_000)
    page_size: int = Field(50, ge=1, le=1_000_000, description="Capped at API_MAX_PAGE_SIZE (default 200)")


def _page(
    queryset: QuerySet, paging: Paging, serialize: Callable[[Any], dict], order: listing.Sorted | None = None
) -> dict:
    """A page of `queryset`, in its order or `order`'s (the lists Manage Exports shares):
    the page's ids first, then only those rows read whole."""
    size = min(paging.page_size, settings.API_MAX_PAGE_SIZE)
    ids_in_order = order or queryset.values_list("pk", flat=True)
    count = ids_in_order.count()
    start = (paging.page - 1) * size
    ids = list(ids_in_order[start : start + size]) if start < count else []
    rows = listing.in_order(ids, queryset)
    return {
        "Items": [serialize(row) for row in rows],
        "Count": count,
        "Page": paging.page,
        "PageSize": size,
        "NextPage": paging.page + 1 if start + size < count else None,
    }


class DatasetFilters(Paging):
    database: list[DbId] = Field([], description="Database ids (repeat the parameter for several)")
    data_type: list[s.DataTypeChoice] = Field([])


@api.get("/datasets", response={200: s.DatasetPage, **ERRORS}, tags=["datasets"])
def list_datasets(request: TokenRequest, filters: Query[DatasetFilters]) -> dict:
    """Datasets an export can read: their database, data type and columns."""
    queryset = Dataset.objects.filter(database__sandbox_id=request.sandbox_scope.sandbox_id)
    queryset = queryset.select_related("database").order_by("database__name", "schema_name", "name", "id")
    if filters.database:
        queryset = queryset.filter(database__in=filters.database)
    if filters.data_type:
        queryset = queryset.filter(data_type__in=filters.data_type)
    return _page(queryset, filters, dataset_out)


@api.get("/connectors", response={200: s.ConnectorPage, **ERRORS}, tags=["connectors"])
def list_connectors(request: TokenRequest, paging: Query[Paging]) -> dict:
    """Destinations an export can deliver to. Never their credentials."""
    queryset = Connector.objects.usable_in(request.sandbox_scope.sandbox_id).select_related("owner")
    return _page(queryset, paging, connector_out)


class ManageFilters(Paging):
    """The Manage Exports page's filters, combinable."""

    q: s.Text = Field("", max_length=200, description="Part of the name")
    database: list[DbId] = Field([])
    data_type: list[s.DataTypeChoice] = Field([])
    export_type: list[s.ExportTypeChoice] = Field([])


class ExportFilters(ManageFilters):
    status: list[s.ExportStatusChoice] = Field([], description="Draft, Scheduled (tabs), Finished, Expired")
    sort: Literal["name", "-name", "last_run", "-last_run", "next_run", "-next_run"] = "-last_run"


def _manage_query(request: TokenRequest, filters: ManageFilters, sort: str) -> listing.ManageQuery:
    return listing.ManageQuery(
        sandbox_id=request.sandbox_scope.sandbox_id,
        q=filters.q.strip(),
        databases=filters.database,
        data_types=filters.data_type,
        export_types=filters.export_type,
        sort=sort,
    )


@api.get("/exports", response={200: s.ExportPage, **ERRORS}, tags=["exports"])
def list_exports(request: TokenRequest, filters: Query[ExportFilters]) -> dict:
    """Your exports (admins: everyone's), with the Draft and Scheduled tabs' filters."""
    query = _manage_query(request, filters, filters.sort)
    queryset = exports_queryset(request).filter(query.export_filter())
    if filters.status:
        queryset = queryset.filter(status__in=[EXPORT_STATUS_VALUES[status] for status in filters.status])
    return _page(queryset, filters, export_out, listing.Sorted(queryset, query.sort, listing.EXPORT_SORT_COLUMNS))


@api.post("/exports", response={201: s.ExportOut, **ERRORS}, tags=["exports"])
def create_export(request: TokenRequest, payload: s.ExportIn) -> Status[dict]:
    """A new export, validated as the wizard validates it. A one-shot with `Launch` is
    launched at once (see the 409 rule under launch)."""
    actions.require_create(
        request.user, request.sandbox_scope.sandbox_id
    )  # before the definition: a viewer learns that first
    given = payload.model_dump(exclude_unset=True, exclude={"Launch", "QueueAnyway"})
    with transaction.atomic():  # a refused launch creates nothing
        export = save_definition(
            Export(owner=request.user, sandbox=request.sandbox_scope.sandbox),
            given,
            time_zone=time_zone_of(request.user),
            user=request.user,
        )
        if payload.Launch:
            actions.launch(request.user, export, queue_anyway=payload.QueueAnyway, trigger=Run.Trigger.API)
    return Status(201, _reread(request, export))


def _lookup(queryset: QuerySet, ids: list[UUID], serialize: Callable[[Any], dict]) -> dict:
    """Rows by id, in the order asked, each once; the ids not found (or not visible) apart."""
    found = {row.id: row for row in queryset.filter(id__in=ids)}
    wanted = dict.fromkeys(ids)
    return {
        "Items": [serialize(found[i]) for i in wanted if i in found],
        "NotFound": [i for i in wanted if i not in found],
    }


@api.post("/exports/lookup", response={200: s.ExportLookup, **ERRORS}, tags=["exports"])
def lookup_exports(request: TokenRequest, payload: s.IdsIn) -> dict:
    """Up to 1,000 exports by id in one request; ids you can't see are listed in NotFound."""
    return _lookup(exports_queryset(request), payload.Ids, export_out)


@api.get("/exports/{export_id}", response={200: s.ExportOut, **ERRORS}, tags=["exports"])
def get_export(request: TokenRequest, export_id: UUID) -> dict:
    return export_out(_get_export(request, export_id))


@api.patch("/exports/{export_id}", response={200: s.ExportOut, **ERRORS}, tags=["exports"])
def update_export(request: TokenRequest, export_id: UUID, payload: s.ExportPatch) -> dict:
    """Change a draft: only the fields sent change, and the whole definition is validated again."""
    export = _get_export(request, export_id)
    actions.check_editable(request.user, export)
    with transaction.atomic():
        save_definition(
            export, payload.model_dump(exclude_unset=True), time_zone=time_zone_of(request.user), user=request.user
        )
    return _reread(request, export)


@api.delete("/exports/{export_id}", response={204: None, **ERRORS}, tags=["exports"])
def delete_export(request: TokenRequest, export_id: UUID) -> Status[None]:
    """Delete a draft, with its runs and their Desktop files."""
    actions.delete(request.user, _get_export(request, export_id))
    return Status(204, None)


@api.post("/exports/{export_id}/copy", response={201: s.ExportOut, **ERRORS}, tags=["exports"])
def copy_export(request: TokenRequest, export_id: UUID, payload: s.CopyIn) -> Status[dict]:
    """A new draft with the same definition."""
    copy = actions.copy(request.user, _get_export(request, export_id), payload.Name)
    return Status(201, _reread(request, copy))


@api.post("/exports/{export_id}/launch", response={202: s.RunOut, **ERRORS}, tags=["exports"])
def launch(request: TokenRequest, export_id: UUID, payload: s.LaunchIn | None = None) -> Status[dict]:
    """Queue a run of a one-shot export now (see the 409 rule in docs/api.md)."""
    export = _get_export(request, export_id)
    run = actions.launch(
        request.user, export, queue_anyway=bool(payload and payload.QueueAnyway), trigger=Run.Trigger.API
    )
    return Status(202, _reread_run(request, run))


@api.post("/exports/{export_id}/schedule", response={200: s.ExportOut, **ERRORS}, tags=["exports"])
def schedule(request: TokenRequest, export_id: UUID) -> dict:
    """Draft -> Scheduled: repeating exports run by themselves; a one-shot with a start waits for it."""
    export = actions.schedule(request.user, _get_export(request, export_id))
    return _reread(request, export)


@api.post("/exports/{export_id}/unschedule", response={200: s.ExportOut, **ERRORS}, tags=["exports"])
def unschedule(request: TokenRequest, export_id: UUID) -> dict:
    """Scheduled -> Draft. A run in progress finishes; the watermark is kept."""
    export = actions.unschedule(request.user, _get_export(request, export_id))
    return _reread(request, export)


@api.post("/exports/{export_id}/run-now", response={202: s.RunOut, **ERRORS}, tags=["exports"])
def run_now(request: TokenRequest, export_id: UUID) -> Status[dict]:
    """Start a scheduled export's next run now (incremental: from its watermark); later
    runs keep their times."""
    run = actions.run_now(request.user, _get_export(request, export_id), trigger=Run.Trigger.API)
    return Status(202, _reread_run(request, run))


@api.post("/exports/{export_id}/reset-watermark", response={200: s.ExportOut, **ERRORS}, tags=["exports"])
def reset_watermark(request: TokenRequest, export_id: UUID) -> dict:
    """Incremental: the next run exports every row again."""
    export = actions.reset_watermark(request.user, _get_export(request, export_id))
    return _reread(request, export)


# Runs ----------------------------------------------------------------------------


class RunFilters(ManageFilters):
    status: list[s.RunStatusChoice] = Field([], description="Pending and Processing: In progress; the rest: Finished")
    sort: Literal["name", "-name", "last_run", "-last_run", "next_run", "-next_run"] = "-last_run"


def _runs(queryset: QuerySet, filters: RunFilters, request: TokenRequest) -> dict:
    query = _manage_query(request, filters, filters.sort)
    queryset = queryset.filter(query.run_filter())
    if filters.status:
        queryset = queryset.filter(status__in=[RUN_STATUS_VALUES[status] for status in filters.status])
    return _page(queryset, filters, run_out, listing.Sorted(queryset, query.sort, listing.RUN_SORT_COLUMNS))


@api.get("/runs", response={200: s.RunPage, **ERRORS}, tags=["runs"])
def list_runs(request: TokenRequest, filters: Query[RunFilters]) -> dict:
    """Runs of your exports, with the In progress and Finished tabs' filters."""
    return _runs(runs_queryset(request), filters, request)


@api.get("/exports/{export_id}/runs", response={200: s.RunPage, **ERRORS}, tags=["runs"])
def list_export_runs(request: TokenRequest, export_id: UUID, filters: Query[RunFilters]) -> dict:
    export = _get_export(request, export_id)
    return _runs(runs_queryset(request).filter(export=export), filters, request)


@api.post("/runs/lookup", response={200: s.RunLookup, **ERRORS}, tags=["runs"])
def lookup_runs(request: TokenRequest, payload: s.IdsIn) -> dict:
    """Up to 1,000 runs by id in one request; ids you can't see are listed in NotFound."""
    return _lookup(runs_queryset(request), payload.Ids, run_out)


@api.get("/runs/{run_id}", response={200: s.RunOut, **ERRORS}, tags=["runs"])
def get_run(request: TokenRequest, run_id: UUID) -> dict:
    """A run's report; once it succeeded, its files with signed download URLs."""
    return run_out(_get_run(request, run_id))


@api.post("/runs/{run_id}/cancel", response={200: s.RunOut, **ERRORS}, tags=["runs"])
def cancel(request: TokenRequest, run_id: UUID) -> dict:
    """Cancel a pending or processing run: nothing is delivered."""
    run = actions.cancel(request.user, _get_run(request, run_id))
    return _reread_run(request, run)


@api.post("/runs/{run_id}/relaunch", response={202: s.RunOut, **ERRORS}, tags=["runs"])
def relaunch(request: TokenRequest, run_id: UUID) -> Status[dict]:
    """Run a failed run again, after fixing its cause (credentials, a bucket, a host key...)."""
    new_run = actions.relaunch(request.user, _get_run(request, run_id))
    return Status(202, _reread_run(request, new_run))


# After-export hooks ------------------------------------------------------------------


@api.get("/exports/{export_id}/hooks", response={200: list[s.HookOut], **ERRORS}, tags=["hooks"])
def list_hooks(request: TokenRequest, export_id: UUID) -> list[dict]:
    """The URLs called when a run of the export ends (docs/hooks.md)."""
    export = _get_export(request, export_id)
    full = actions.hooks_refusal(request.user, export) is None
    return [hook_out(hook, full=full) for hook in export.hooks.select_related("created_by").defer("secret")]


@api.post("/exports/{export_id}/hooks", response={201: s.HookCreated, **ERRORS}, tags=["hooks"])
def add_hook(request: TokenRequest, export_id: UUID, payload: s.HookIn) -> Status[dict]:
    """Add a hook. The answer holds its signing secret, this once only."""
    try:
        hook, secret = actions.add_hook(request.user, _get_export(request, export_id), payload.Url, payload.Events)
    except actions.ActionRefused as refusal:
        if refusal.fields:  # the action's field names, as this API spells them
            refusal.fields = {name.capitalize(): problems for name, problems in refusal.fields.items()}
        raise
    return Status(201, {**hook_out(hook, full=True), "Secret": secret})


@api.delete("/exports/{export_id}/hooks/{hook_id}", response={204: None, **ERRORS}, tags=["hooks"])
def remove_hook(request: TokenRequest, export_id: UUID, hook_id: DbId) -> Status[None]:
    """Remove a hook: it is called no more; calls still being retried stop."""
    export = _get_export(request, export_id)
    hook = export.hooks.filter(id=hook_id).first()
    if hook is None:
        raise not_found("hook")
    actions.remove_hook(request.user, hook)
    return Status(204, None)


@api.get("/runs/{run_id}/hook-calls", response={200: list[s.HookCallOut], **ERRORS}, tags=["hooks"])
def list_hook_calls(request: TokenRequest, run_id: UUID) -> list[dict]:
    """The run's hook calls and every attempt of each."""
    run = _get_run(request, run_id)
    full = actions.hooks_refusal(request.user, run.export) is None
    calls = run.hook_calls.select_related("hook").defer("hook__secret").prefetch_related("attempt_log")
    return [hook_call_out(call, full=full) for call in calls]


@api.post("/runs/{run_id}/hook-calls/{call_id}/send-again", response={202: s.HookCallOut, **ERRORS}, tags=["hooks"])
def send_hook_again(request: TokenRequest, run_id: UUID, call_id: UUID) -> Status[dict]:
    """Send a call again: the same message and webhook-id, signed afresh."""
    run = _get_run(request, run_id)
    call = run.hook_calls.select_related("run__export").filter(id=call_id).first()
    if call is None:
        raise not_found("hook call")
    actions.send_hook_again(request.user, call)
    call = run.hook_calls.select_related("hook").defer("hook__secret").prefetch_related("attempt_log").get(id=call_id)
    return Status(202, hook_call_out(call, full=True))


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
    request: HttpRequest,
    run_id: UUID,
    part: Annotated[int, Field(ge=1, le=1_000_000)],
    expires: Annotated[int, Field(ge=0, le=2**40)],
    signature: Annotated[str, Field(max_length=200)],
) -> StreamingHttpResponse:
    """One file of a run, through the signed URL in the run's `Files` (no token needed).
    The URL stops working when it expires, or when the run's files do."""
    problem = check_signature(run_id, part, expires, signature)
    if problem == "INVALID_SIGNATURE":
        raise ApiError(403, problem, "this download URL is not valid (it was changed, or not issued by us)")
    if problem == "URL_EXPIRED":
        raise ApiError(403, problem, "this download URL has expired: read the run again for a fresh one")
    run = Run.objects.select_related("connector").filter(id=run_id).first()
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

    def stream() -> Iterator[bytes]:
        yield first
        yield from chunks

    response = StreamingHttpResponse(stream(), content_type="application/octet-stream")
    response["Content-Length"] = str(run_file.size_bytes)
    # An attachment always gets a header; the stubs type the inline-without-name None too.
    response["Content-Disposition"] = content_disposition_header(True, run_file.name)  # type: ignore[assignment]
    return response


def _file_chunks(run: Run, run_file: RunFile) -> Iterator[bytes]:
    """The file from where the run delivered it, whatever the export says today."""
    if run.is_desktop:
        yield from desktop_chunks(run_file.path)
        return
    if run.connector is None:
        raise FileNotFoundError("the connector the run delivered to was deleted")
    with open_destination(run.connector) as destination:
        yield from destination.read_chunks(destination.name_of(run_file.path))
