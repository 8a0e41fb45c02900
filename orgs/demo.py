"""`make run`'s two demo organisations, so a new user sees isolation at once: each has
its own source database, its own people (an admin and a marketer), and a `test` sandbox
beside production. Their passwords are made once and kept, owner-only, in the data
folder, like the first admin's."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth import get_user_model

from exports.demo import build_demo_database
from exports.models import Database, refresh_datasets
from orgs.models import Membership, Organisation, Sandbox

# name, slug, the demo data's seed
ORGANISATIONS = (("Acme Retail", "acme", 1), ("Bravo Travel", "bravo", 2))
ROLES = (Membership.Role.ADMIN, Membership.Role.MARKETER)


@dataclass(frozen=True)
class Login:
    username: str
    password: str
    organisation: str
    role: str


def _passwords(path: Path) -> dict[str, str]:
    """The demo users' passwords, generated the first time and kept."""
    if path.exists():
        return json.loads(path.read_text())
    passwords = {f"{slug}-{role}": secrets.token_urlsafe(9) for _, slug, _ in ORGANISATIONS for role in ROLES}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(passwords, fh)
    return passwords


def seed_organisations(data_dir: Path, *, profiles: int = 5_000, interactions: int = 50_000) -> list[Login]:
    """Create what is missing of the two demo organisations; their logins."""
    passwords = _passwords(data_dir / "demo_logins.json")
    User = get_user_model()
    logins = []
    for name, slug, seed in ORGANISATIONS:
        organisation = Organisation.objects.filter(slug=slug).first() or Organisation.objects.create(
            name=name, slug=slug
        )
        production = organisation.sandboxes.get(kind=Sandbox.Kind.PRODUCTION)
        Sandbox.objects.get_or_create(organisation=organisation, slug="test", defaults={"name": "Test"})
        path = data_dir / "demo" / f"{slug}_crm.sqlite3"
        database = Database.objects.filter(sandbox=production, name=f"{name} CRM").first()
        if database is None or not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            build_demo_database(path, profiles=profiles, interactions=interactions, seed=seed)
            database = database or Database(name=f"{name} CRM", sandbox=production)
            database.url = f"sqlite:///{path}"
            database.save()
            refresh_datasets(database)
        for role in ROLES:
            username = f"{slug}-{role}"
            user = User.objects.filter(username=username).first()
            if user is None:
                user = User.objects.create_user(username, f"{username}@example.com", passwords[username])
            Membership.objects.get_or_create(user=user, organisation=organisation, defaults={"role": role})
            password = passwords[username] if user.check_password(passwords[username]) else "(changed since)"
            logins.append(Login(username, password, name, str(Membership.Role(role).label).lower()))
    return logins
