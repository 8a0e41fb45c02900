"""Where a request acts: an organisation's sandbox, named in the URL.

Pages live under `/o/<organisation>/<sandbox>/`: `/o/acme/production/exports/`. The
middleware reads that prefix, checks the user may be there, and serves the rest of the
path as if the site were mounted at the prefix (Django's script prefix, as behind a
proxy). So every link a page renders with `{% url %}` or `reverse()` stays in the same
sandbox, with no view or template naming it.

- A sandbox the user may not enter answers 404, exactly as one that doesn't exist.
- A page URL without the prefix (an old bookmark) redirects to the same page in the
  user's current sandbox: the one they were last in, else their first organisation's
  production.
- The API (`/api/`), the admin, sign-in and static files are not in a sandbox: an API
  token carries its own (`Scope.of_token`).
- Platform staff entering an organisation they are not a member of is recorded in the
  audit log, once per session and organisation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from django.contrib.auth.signals import user_logged_in
from django.contrib.auth.views import redirect_to_login
from django.core.handlers.wsgi import get_script_name
from django.dispatch import receiver
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import get_script_prefix, reverse, set_script_prefix

from exports.permissions import role_in
from orgs.models import AuditEntry, Membership, Sandbox

if TYPE_CHECKING:
    from exports.permissions import Actor

SCOPED = re.compile(r"^/o/(?P<organisation>[-\w]+)/(?P<sandbox>[-\w]+)(?P<rest>/.*)?$")

# Paths that are not in a sandbox. Everything else is a page of one.
UNSCOPED = ("/api/", "/admin/", "/accounts/", "/django-rq/", "/static/", "/favicon.ico", "/healthz", "/metrics")

SESSION_KEY = "scope_sandbox"
ENTERED_KEY = "scope_entered"


@dataclass(frozen=True)
class Scope:
    """A sandbox, its organisation, and the role of whoever acts in it."""

    sandbox: Sandbox
    role: str

    @property
    def organisation(self):
        return self.sandbox.organisation

    @property
    def sandbox_id(self) -> int:
        return self.sandbox.pk

    @property
    def prefix(self) -> str:
        """The URL path that names this sandbox, without the site's own prefix."""
        return f"o/{self.organisation.slug}/{self.sandbox.slug}/"

    @classmethod
    def of(cls, user: Actor, sandbox: Sandbox) -> Scope | None:
        role = role_in(user, sandbox.pk)
        return cls(sandbox, role) if role is not None else None


def sandbox_named(organisation: str, sandbox: str) -> Sandbox | None:
    return Sandbox.objects.select_related("organisation").filter(organisation__slug=organisation, slug=sandbox).first()


def sandboxes_of(user: Actor) -> list[Sandbox]:
    """Every sandbox the user may enter, by organisation: the header's switcher.
    Superusers see every organisation's."""
    sandboxes = Sandbox.objects.select_related("organisation")
    if not user.is_superuser:
        sandboxes = sandboxes.filter(organisation__memberships__user_id=user.pk or 0)
    return list(sandboxes.order_by("organisation__name", "-kind", "name"))


def current_sandbox(request: HttpRequest, user: Actor | None = None) -> Sandbox | None:
    """Where an unscoped page URL goes: the sandbox the user was last in, if they may
    still enter it, else their first organisation's production sandbox."""
    user = user or request.user
    remembered = request.session.get(SESSION_KEY)
    if remembered is not None:
        sandbox = Sandbox.objects.select_related("organisation").filter(pk=remembered).first()
        if sandbox is not None and role_in(user, sandbox.pk) is not None:
            return sandbox
    membership = (
        Membership.objects.filter(user_id=user.pk or 0)
        .select_related("organisation")
        .order_by("organisation__name")
        .first()
    )
    organisations = Sandbox.objects.select_related("organisation").filter(kind=Sandbox.Kind.PRODUCTION)
    if membership is not None:
        return organisations.filter(organisation=membership.organisation).first()
    if user.is_superuser:
        return organisations.order_by("organisation__name").first()
    return None


def _base(request: HttpRequest) -> str:
    """The site's own prefix (SCRIPT_NAME behind a proxy), ending in a slash."""
    return (get_script_name(request.META) or "").rstrip("/") + "/"


_SANDBOX_TAIL = re.compile(r"(?<=/)o/[-\w]+/[-\w]+/$")


def site_reverse(viewname: str, *, sandbox: Sandbox | None = None, **kwargs) -> str:
    """`reverse()` from anywhere (a worker, the API, another sandbox's page): of a place
    outside sandboxes (an API URL), or with `sandbox`, of a page in it."""
    previous = get_script_prefix()
    base = _SANDBOX_TAIL.sub("", previous)
    set_script_prefix(base if sandbox is None else f"{base}o/{sandbox.organisation.slug}/{sandbox.slug}/")
    try:
        return reverse(viewname, **kwargs)
    finally:
        set_script_prefix(previous)


def url_in(request: HttpRequest, sandbox: Sandbox, path: str = "exports/") -> str:
    """The URL of `path` (relative to a sandbox's root) in `sandbox`."""
    return f"{_base(request)}o/{sandbox.organisation.slug}/{sandbox.slug}/{path}"


def _audit_entry(request: HttpRequest, scope: Scope) -> None:
    """A superuser in an organisation they don't belong to: once per session each."""
    user = request.user
    if not user.is_superuser:
        return
    organisation = scope.organisation
    entered = request.session.get(ENTERED_KEY, [])
    if organisation.pk in entered:
        return
    if not Membership.objects.filter(user_id=user.pk, organisation=organisation).exists():
        AuditEntry.objects.create(
            user=user,
            username=user.get_username(),
            organisation=organisation,
            sandbox=scope.sandbox,
            action=AuditEntry.Action.ENTERED,
            path=request.path[:500],
        )
    request.session[ENTERED_KEY] = [*entered, organisation.pk]


@receiver(user_logged_in)
def _remember_where_they_start(sender, request, user, **kwargs) -> None:
    """Signing in puts the current sandbox in the new session, so the pages that follow
    in it only write the session again when the user moves to another sandbox."""
    if request is not None and hasattr(request, "session"):
        sandbox = current_sandbox(request, user)
        if sandbox is not None:
            request.session[SESSION_KEY] = sandbox.pk


class ScopeMiddleware:
    """Resolves `request.sandbox_scope` from the URL (after AuthenticationMiddleware)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.sandbox_scope = None  # type: ignore[attr-defined]
        path = request.path_info
        if path.startswith(UNSCOPED):
            return self._mounted_at(request, _base(request))
        matched = SCOPED.match(path)
        if matched is None:
            return self._unscoped_page(request)
        rest = matched["rest"]
        if rest is None:  # /o/acme/test: the sandbox's root
            return HttpResponseRedirect(request.path + "/")
        if rest.startswith(UNSCOPED):
            # A link rendered inside a sandbox to a place outside them (sign out, the admin).
            request.path_info = rest
            return self._mounted_at(request, _base(request))
        if not request.user.is_authenticated:
            return self._mounted_at(request, _base(request), lambda: redirect_to_login(request.get_full_path()))
        sandbox = sandbox_named(matched["organisation"], matched["sandbox"])
        scope = Scope.of(request.user, sandbox) if sandbox is not None else None
        if scope is None:
            raise Http404("no such organisation or sandbox")  # the same as one that doesn't exist
        request.sandbox_scope = scope  # type: ignore[attr-defined]
        request.path_info = rest
        _audit_entry(request, scope)
        if request.session.get(SESSION_KEY) != scope.sandbox_id:
            request.session[SESSION_KEY] = scope.sandbox_id
        return self._mounted_at(request, _base(request) + scope.prefix)

    def _mounted_at(self, request: HttpRequest, prefix: str, answer=None) -> HttpResponse:
        """The response (of the view, or `answer`) with `prefix` as the script prefix."""
        previous = get_script_prefix()
        set_script_prefix(prefix)
        try:
            return answer() if answer is not None else self.get_response(request)
        finally:
            set_script_prefix(previous)

    def _unscoped_page(self, request: HttpRequest) -> HttpResponse:
        """An old bookmark, or the site's root: the same page in the current sandbox."""
        if not request.user.is_authenticated:
            return self._mounted_at(request, _base(request))  # the page asks them to sign in first
        sandbox = current_sandbox(request)
        if sandbox is None:
            return render(request, "orgs/no_organisation.html", status=403)
        scope = Scope(sandbox, role_in(request.user, sandbox.pk) or "")
        target = _base(request) + scope.prefix + quote(request.path_info.lstrip("/"))
        if request.META.get("QUERY_STRING"):
            target += "?" + request.META["QUERY_STRING"]
        response = HttpResponseRedirect(target)
        if request.method not in ("GET", "HEAD"):
            response.status_code = 307  # a form posted to an old URL is posted again, unchanged
        return response
