from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from connectors.forms import ConnectorForm
from connectors.models import ConnectionTest, Connector, KeyEvent
from connectors.probe import ProbeReport, current, start_test
from connectors.sshkeys import FINGERPRINT, host_key_fingerprint, normalize_fingerprint
from exports.actions import ActionRefused
from exports.permissions import can_change_connector, can_download_key, can_manage_connectors
from exports.views.pages import scope_of
from exportsite.clientip import client_address

KINDS = [kind for kind in Connector.Kind if kind != Connector.Kind.DESKTOP]


MANAGE_FORBIDDEN = "only the organisation's admins manage destinations; marketers use them"


def _get_connector_for_user(request, connector_id, *, write: bool = False) -> Connector:
    """A connector of the page's sandbox (any other is a 404, as a missing one)."""
    connector = get_object_or_404(
        Connector.objects.select_related("owner"), id=connector_id, sandbox_id=scope_of(request).sandbox_id
    )
    if write and not can_change_connector(request.user, connector):
        raise PermissionDenied(MANAGE_FORBIDDEN)
    return connector


@login_required
def connectors_list(request):
    sandbox_id = scope_of(request).sandbox_id
    connectors = (
        Connector.objects.filter(sandbox_id=sandbox_id).select_related("owner").annotate(export_count=Count("exports"))
    )
    return render(
        request,
        "connectors/list.html",
        {"connectors": connectors, "kinds": KINDS, "can_create": can_manage_connectors(request.user, sandbox_id)},
    )


@login_required
def connectors_new(request):
    scope = scope_of(request)
    if not can_manage_connectors(request.user, scope.sandbox_id):
        raise PermissionDenied(MANAGE_FORBIDDEN)
    kind = request.GET.get("kind") or request.POST.get("kind")
    if kind not in KINDS:
        return render(request, "connectors/choose_kind.html", {"kinds": KINDS})
    form = ConnectorForm(request.POST or None, kind=kind, owner=request.user, sandbox=scope.sandbox)
    if request.method == "POST" and form.is_valid():
        connector = form.save()
        messages.success(request, f"Created the connector {connector.name!r}. Test its connection below.")
        return redirect(connector)
    return render(
        request, "connectors/form.html", {"form": form, "kind": kind, "kind_label": Connector.Kind(kind).label}
    )


@login_required
def connectors_edit(request, connector_id):
    connector = _get_connector_for_user(request, connector_id, write=True)
    form = ConnectorForm(request.POST or None, kind=connector.kind, instance=connector, owner=connector.owner)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Saved {connector.name!r}.")
        return redirect(connector)
    return render(
        request,
        "connectors/form.html",
        {"form": form, "connector": connector, "kind": connector.kind, "kind_label": connector.get_kind_display()},
    )


@login_required
def connectors_detail(request, connector_id):
    connector = _get_connector_for_user(request, connector_id)
    context = {
        "connector": connector,
        "exports": connector.in_use_by().select_related("dataset"),
        "can_change": can_change_connector(request.user, connector),
        "can_download_key": can_download_key(request.user, connector),
    }
    if connector.is_hosted_sftp:
        context.update(
            sftpd_host=settings.SFTPD_PUBLIC_HOST,
            sftpd_port=settings.SFTPD_PORT,
            server_fingerprint=host_key_fingerprint(),
            key_events=connector.key_events.select_related("user")[:20],
        )
    return render(request, "connectors/detail.html", context)


@login_required
@require_POST
def connectors_test(request, connector_id):
    """Queue a test on the workers; the result page (or htmx fragment) polls it."""
    connector = _get_connector_for_user(request, connector_id, write=True)
    try:
        test = start_test(request.user, connector)
    except ActionRefused as refused:
        context = {"connector": connector, "refusal": refused.message}
        if request.htmx:
            return render(request, "connectors/_test_result.html", context)
        return render(request, "connectors/test.html", context, status=refused.status)
    if request.htmx:
        return _test_result(request, connector, test)
    return redirect(test)


@login_required
def connectors_test_result(request, connector_id, test_id):
    """A test's steps so far; while it runs, the page asks again every second."""
    connector = _get_connector_for_user(request, connector_id, write=True)
    test = current(get_object_or_404(ConnectionTest, id=test_id, connector=connector))  # scoped by the connector
    if request.htmx:
        return _test_result(request, connector, test)
    return render(request, "connectors/test.html", _test_context(connector, test))


def _test_context(connector: Connector, test: ConnectionTest) -> dict:
    if not test.pending:
        connector.refresh_from_db(fields=["last_tested_at", "last_test_ok", "last_test_message"])
    return {
        "connector": connector,
        "test": test,
        "report": ProbeReport.of(test),
        "can_change": True,
        "seconds": settings.CONNECTION_TEST_SECONDS,
    }


def _test_result(request, connector: Connector, test: ConnectionTest):
    context = _test_context(connector, test)
    return render(request, "connectors/_test_result.html", {**context, "oob": not test.pending})


@login_required
@require_POST
def connectors_trust_host_key(request, connector_id):
    """Pin the SFTP server key the user has just seen and confirmed."""
    connector = _get_connector_for_user(request, connector_id, write=True)
    if not connector.is_sftp:
        raise Http404("only SFTP connectors have a server host key to pin")
    fingerprint = normalize_fingerprint(request.POST.get("fingerprint", ""))
    if not FINGERPRINT.match(fingerprint):
        messages.error(request, "That is not a SHA256 host key fingerprint.")
        return redirect(connector)
    connector.options = {**connector.options, "host_key_fingerprint": fingerprint}
    connector.save(update_fields=["options", "updated_at"])
    messages.success(request, f"Pinned the server's host key {fingerprint}. Any other key will be refused.")
    return redirect(connector)


@login_required
def connectors_delete(request, connector_id):
    connector = _get_connector_for_user(request, connector_id, write=True)
    exports = list(connector.in_use_by()[:20])
    # A queued or running run delivers where it was created to: its connector must stay.
    runs = list(connector.runs.active().select_related("export")[:20])
    if request.method == "POST":
        if exports:
            messages.error(request, f"{connector.name!r} is used by {len(exports)} export(s): change them first.")
            return redirect(connector)
        if runs:
            messages.error(request, f"{connector.name!r} has {len(runs)} run(s) queued or running: wait for them.")
            return redirect(connector)
        name = connector.name
        connector.delete()
        messages.success(request, f"Deleted the connector {name!r}.")
        return redirect("connectors-list")
    return render(
        request,
        "connectors/delete_modal.html",
        {"connector": connector, "exports": exports, "runs": runs, "as_modal": bool(request.htmx)},
    )


def _get_hosted_key_for_owner(request, connector_id) -> Connector:
    """A hosted SFTP connector whose key pages the requester may use: its owner only."""
    connector = _get_connector_for_user(request, connector_id)
    if not connector.is_hosted_sftp:
        raise Http404("only hosted SFTP connectors have an SSH key")
    if not can_download_key(request.user, connector):
        raise PermissionDenied("only the connector's owner may download or rotate its private key")
    return connector


@login_required
def connectors_key_download(request, connector_id):
    """The hosted SFTP private key, for the connector's owner only; every download is logged."""
    connector = _get_hosted_key_for_owner(request, connector_id)
    connector.record_key_event(KeyEvent.Action.DOWNLOADED, request.user, client_address(request) or None)
    response = HttpResponse(connector.secret("private_key"), content_type="application/x-pem-file")
    response["Content-Disposition"] = f'attachment; filename="{connector.sftp_login}-{str(connector.id)[:8]}.key"'
    response["Cache-Control"] = "no-store"
    return response


@login_required
def connectors_key_rotate(request, connector_id):
    """Asks first (GET), then replaces the key pair (POST)."""
    connector = _get_hosted_key_for_owner(request, connector_id)
    if request.method != "POST":
        return render(request, "connectors/rotate_modal.html", {"connector": connector, "as_modal": bool(request.htmx)})
    connector.rotate_key(by=request.user)
    messages.success(request, "A new key pair is ready; the old key no longer logs in. Download the new key.")
    return redirect(connector)
