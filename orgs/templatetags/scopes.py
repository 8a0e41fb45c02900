"""The header's switcher: links to the same section of another sandbox."""

from django import template

from orgs.scope import url_in

register = template.Library()

SECTIONS = ("exports", "connectors", "sources", "profile")


@register.simple_tag(takes_context=True)
def switch_url(context, sandbox) -> str:
    """The page's section (Exports, Connectors...) in `sandbox`: an object of this
    sandbox has no twin there, so the switch lands on the list."""
    request = context["request"]
    section = request.path_info.strip("/").split("/", 1)[0]
    return url_in(request, sandbox, f"{section}/" if section in SECTIONS else "exports/")
