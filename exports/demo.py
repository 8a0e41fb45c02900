"""The demo source database "Demo CRM": realistic, deterministic marketing data.

Deterministic: the same seed gives the same rows, so demo exports and tests can be
compared run to run. Built into a temp file and moved into place, so a half-built
database is never left where the product looks for it.
"""

from __future__ import annotations

import os
import random
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

FIRST_NAMES = [
    "Emma",
    "Liam",
    "Olivia",
    "Noah",
    "Ava",
    "Lucas",
    "Mia",
    "Hugo",
    "Léa",
    "Chloé",
    "Zoë",
    "Jürgen",
    "Søren",
    "Małgorzata",
    "Łukasz",
    "Ines",
    "José",
    "María",
    "François",
    "Anaïs",
    "Björn",
    "Ægir",
    "Ömer",
    "Çağla",
    "陽翔",
    "さくら",
    "Юлия",
    "Дмитрий",
    "محمد",
    "فاطمة",
    "Aarav",
    "Priya",
    "Wei",
    "Mei",
    "Oluwaseun",
    "Amara",
]
LAST_NAMES = [
    "Smith",
    "Johnson",
    "Martin",
    "Bernard",
    "Dubois",
    "Müller",
    "Schmidt",
    "Weiß",
    "Straße",
    "Nowak",
    "Wiśniewski",
    "García",
    "Fernández",
    "Rossi",
    "Bianchi",
    "O'Brien",
    "Nguyễn",
    "Kowalczyk",
    "Andersen",
    "佐藤",
    "鈴木",
    "Иванов",
    "الفارسي",
    "Sharma",
    "Chen",
    "Okafor",
    "van der Berg",
    "D'Angelo",
]
COUNTRIES = [
    ("US", 30),
    ("FR", 12),
    ("DE", 12),
    ("GB", 10),
    ("ES", 6),
    ("IT", 6),
    ("PL", 4),
    ("NL", 4),
    ("JP", 5),
    ("BR", 4),
    ("IN", 4),
    ("CA", 3),
]
CITIES = {
    "US": ["New York", "Austin", "Seattle", "Chicago"],
    "FR": ["Paris", "Lyon", "Marseille", "Saint-Étienne"],
    "DE": ["Berlin", "München", "Köln", "Düsseldorf"],
    "GB": ["London", "Manchester", "Leeds"],
    "ES": ["Madrid", "Barcelona", "A Coruña"],
    "IT": ["Roma", "Milano", "Forlì"],
    "PL": ["Warszawa", "Kraków", "Łódź"],
    "NL": ["Amsterdam", "Utrecht"],
    "JP": ["東京", "大阪", "Kyoto"],
    "BR": ["São Paulo", "Rio de Janeiro"],
    "IN": ["Mumbai", "Bengaluru"],
    "CA": ["Toronto", "Montréal"],
}
# A few values that exercise CSV and JSON quoting on purpose.
TRICKY_CITIES = ["Washington, D.C.", 'The "Big" Apple', "Line\nbreak City", "Rocket 🚀 Town"]
DOMAINS = ["example.com", "mail.example.org", "example.net", "exemple.fr", "beispiel.de"]
TIERS = ["bronze", "silver", "gold", "platinum"]
CHANNELS = [("email", 45), ("web", 25), ("mobile_app", 15), ("sms", 8), ("push", 7)]
EVENTS = {
    "email": [("send", 40), ("open", 30), ("click", 15), ("unsubscribe", 1), ("bounce", 2)],
    "web": [("page_view", 60), ("click", 20), ("add_to_cart", 8), ("purchase", 3)],
    "mobile_app": [("app_open", 50), ("page_view", 30), ("purchase", 4)],
    "sms": [("send", 60), ("click", 10), ("unsubscribe", 1)],
    "push": [("send", 60), ("open", 20)],
}
CAMPAIGNS = [
    "spring_sale_2025",
    "black_friday_2025",
    "welcome_series",
    "winback_q3",
    "newsletter_weekly",
    "summer_launch",
    "loyalty_boost",
    'holiday "gift" guide',
    "noël, promo",
]
DEVICES = ["desktop", "ios", "android", "tablet"]
LISTS = ["newsletter", "promotions", "product_updates", "sms_alerts"]
SOURCES = ["signup_form", "checkout", "import", "api", "landing_page"]
ORDER_STATUSES = [("delivered", 70), ("shipped", 10), ("cancelled", 8), ("refunded", 4), ("pending", 8)]
CURRENCIES = {"US": "USD", "GB": "GBP", "JP": "JPY", "BR": "BRL", "IN": "INR", "CA": "CAD", "PL": "PLN"}

END = datetime(2026, 11, 1, tzinfo=UTC)
START = END - timedelta(days=730)
CHUNK = 50_000


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S+00:00")


def _weighted(rng: random.Random, pairs: list[tuple[str, int]], k: int) -> list[str]:
    values, weights = zip(*pairs, strict=True)
    return rng.choices(values, weights=weights, k=k)


SCHEMA = """
CREATE TABLE profiles (
    id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, first_name TEXT, last_name TEXT, country_code TEXT,
    city TEXT, birth_date DATE, email_opt_in BOOLEAN NOT NULL, loyalty_tier TEXT, lifetime_value DECIMAL(12,2),
    created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL
);
CREATE TABLE interactions (
    id INTEGER PRIMARY KEY, profile_id INTEGER NOT NULL, occurred_at TIMESTAMP NOT NULL, channel TEXT NOT NULL,
    event_type TEXT NOT NULL, campaign TEXT, url TEXT, device TEXT, country_code TEXT, revenue DECIMAL(10,2)
);
CREATE TABLE subscriptions (
    id INTEGER PRIMARY KEY, profile_id INTEGER NOT NULL, list_name TEXT NOT NULL, status TEXT NOT NULL,
    subscribed_at TIMESTAMP NOT NULL, unsubscribed_at TIMESTAMP, source TEXT
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY, profile_id INTEGER NOT NULL, order_number TEXT NOT NULL, ordered_at TIMESTAMP NOT NULL,
    status TEXT NOT NULL, currency TEXT NOT NULL, total_amount DECIMAL(12,2) NOT NULL, items INTEGER NOT NULL,
    coupon_code TEXT
);
"""
INDEXES = """
CREATE INDEX interactions_occurred_at ON interactions (occurred_at);
CREATE INDEX interactions_profile ON interactions (profile_id);
CREATE INDEX subscriptions_profile ON subscriptions (profile_id);
CREATE INDEX orders_profile ON orders (profile_id);
CREATE VIEW active_subscribers AS
    SELECT p.id AS profile_id, p.email, s.list_name, s.subscribed_at
    FROM profiles p JOIN subscriptions s ON s.profile_id = p.id WHERE s.status = 'subscribed';
"""


def _profiles(rng: random.Random, count: int, countries: list[str]) -> Iterator[tuple]:
    span = int((END - START).total_seconds())
    for pid in range(1, count + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        country = countries[pid - 1]
        city = rng.choice(TRICKY_CITIES) if pid % 9973 == 0 else rng.choice(CITIES[country])
        created = START + timedelta(seconds=rng.randrange(span))
        updated = created + timedelta(seconds=rng.randrange(int((END - created).total_seconds()) + 1))
        birth = (
            None
            if rng.random() < 0.15
            else f"{rng.randint(1950, 2006)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        )
        value = None if rng.random() < 0.2 else round(rng.lognormvariate(5, 1.2), 2)
        yield (
            pid,
            f"user{pid}.{rng.randrange(10_000)}@{rng.choice(DOMAINS)}",
            first,
            last,
            country,
            city,
            birth,
            int(rng.random() < 0.7),
            None if rng.random() < 0.4 else rng.choice(TIERS),
            value,
            _ts(created),
            _ts(updated),
        )


def _interactions(rng: random.Random, count: int, profiles: int, countries: list[str]) -> Iterator[tuple]:
    step = (END - START).total_seconds() / max(count, 1)
    channels = _weighted(rng, CHANNELS, count)
    for iid in range(1, count + 1):
        channel = channels[iid - 1]
        event = _weighted(rng, EVENTS[channel], 1)[0]
        moment = START + timedelta(seconds=int(iid * step))
        if iid % 7 == 0:  # some events carry milliseconds
            stamp = moment.strftime("%Y-%m-%d %H:%M:%S") + f".{rng.randrange(1000):03d}+00:00"
        else:
            stamp = _ts(moment)
        profile = rng.randint(1, profiles)
        campaign = rng.choice(CAMPAIGNS) if channel in {"email", "sms", "push"} and rng.random() < 0.8 else None
        url = f"https://shop.example.com/p/{rng.randrange(5000)}" if channel == "web" else None
        revenue = round(rng.uniform(5, 400), 2) if event == "purchase" else None
        yield (iid, profile, stamp, channel, event, campaign, url, rng.choice(DEVICES), countries[profile - 1], revenue)


def _subscriptions(rng: random.Random, profiles: int) -> Iterator[tuple]:
    sid = 0
    span = int((END - START).total_seconds())
    for pid in range(1, profiles + 1):
        for list_name in rng.sample(LISTS, k=rng.choice([0, 1, 1, 2, 2, 3])):
            sid += 1
            subscribed = START + timedelta(seconds=rng.randrange(span))
            status = _weighted(rng, [("subscribed", 75), ("unsubscribed", 20), ("pending", 5)], 1)[0]
            left = None
            if status == "unsubscribed":
                left = _ts(subscribed + timedelta(seconds=rng.randrange(int((END - subscribed).total_seconds()) + 1)))
            yield (sid, pid, list_name, status, _ts(subscribed), left, rng.choice(SOURCES))


def _orders(rng: random.Random, profiles: int, countries: list[str]) -> Iterator[tuple]:
    oid = 0
    span = int((END - START).total_seconds())
    for pid in range(1, profiles + 1):
        for _ in range(rng.choice([0, 0, 0, 1, 1, 2])):
            oid += 1
            items = rng.randint(1, 6)
            yield (
                oid,
                pid,
                f"ORD-{oid:08d}",
                _ts(START + timedelta(seconds=rng.randrange(span))),
                _weighted(rng, ORDER_STATUSES, 1)[0],
                CURRENCIES.get(countries[pid - 1], "EUR"),
                round(items * rng.uniform(8, 120), 2),
                items,
                rng.choice(["WELCOME10", "BF25", "VIP"]) if rng.random() < 0.1 else None,
            )


def build_demo_database(
    path: Path, *, profiles: int = 100_000, interactions: int = 1_000_000, seed: int = 20261122
) -> dict[str, int]:
    """Build the demo database at `path` (replacing it); returns the row count of each table."""
    rng = random.Random(seed)
    countries = _weighted(rng, COUNTRIES, profiles)
    path = Path(path)
    building = path.with_name(f".{path.name}.building-{os.getpid()}")
    building.unlink(missing_ok=True)
    connection = sqlite3.connect(building)
    try:
        connection.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + SCHEMA)
        tables = {
            "profiles": (12, _profiles(rng, profiles, countries)),
            "interactions": (10, _interactions(rng, interactions, profiles, countries)),
            "subscriptions": (7, _subscriptions(rng, profiles)),
            "orders": (9, _orders(rng, profiles, countries)),
        }
        with connection:
            for table, (width, rows) in tables.items():
                connection.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * width)})", rows)
        connection.executescript(INDEXES)
        counts = {table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in tables}
        connection.close()
        os.replace(building, path)
        return counts
    except BaseException:
        connection.close()
        building.unlink(missing_ok=True)
        raise
