from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from exports.filters import compile_where, validate_filters

COLUMNS = [
    {"name": "id", "type": "integer"},
    {"name": "email", "type": "text"},
    {"name": "amount", "type": "decimal", "precision": 10, "scale": 2},
    {"name": "opt_in", "type": "boolean"},
    {"name": "occurred_at", "type": "timestamp"},
    {"name": "birth_date", "type": "date"},
]


def spec(column, operator, value="", value_to=""):
    return {"column": column, "operator": operator, "value": value, "value_to": value_to}


def test_it_parses_values_into_the_column_type():
    parsed = validate_filters(
        [
            spec("id", "gt", "10"),
            spec("amount", "between", "1.5", "20"),
            spec("opt_in", "eq", "yes"),
            spec("occurred_at", "gte", "2026-01-31"),
            spec("email", "in", "a@x.org, b@x.org"),
        ],
        COLUMNS,
    )
    assert parsed[0].values == (10,)
    assert parsed[1].values == (Decimal("1.5"), Decimal("20"))
    assert parsed[2].values == (True,)
    assert parsed[3].values == (datetime(2026, 1, 31, tzinfo=UTC),)
    assert parsed[4].values == ("a@x.org", "b@x.org")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (spec("id", "gt", "ten"), "'ten' is not a whole number"),
        (spec("amount", "eq", "1,5"), "is not a decimal number"),
        (spec("occurred_at", "lt", "yesterday"), "is not a date or date-time"),
        (spec("birth_date", "eq", "31/01/2026"), "is not a date such as"),
        (spec("nope", "eq", "1"), "column 'nope' does not exist"),
        (spec("id", "contains", "1"), "only applies to text columns"),
        (spec("id", "between", "5"), "needs a second value"),
        (spec("id", "between", "5", "1"), "the range for 'id' is empty"),
        (spec("email", "eq", ""), "a value is needed"),
        (spec("email", "like", "x"), "unknown operator"),
        (spec("opt_in", "gt", "true"), "does not apply to boolean"),
    ],
)
def test_it_names_the_problem_with_a_bad_filter(bad, message):
    with pytest.raises(ValidationError) as caught:
        validate_filters([spec("id", "gt", "1"), bad], COLUMNS)
    assert caught.value.messages[0].startswith("Filter 2: ")
    assert message in caught.value.messages[0]


def test_it_refuses_more_than_a_thousand_values_in_a_list():
    with pytest.raises(ValidationError, match="at most 1000"):
        validate_filters([spec("id", "in", ",".join(str(i) for i in range(1001)))], COLUMNS)


def test_it_compiles_sqlite_sql_with_bound_parameters_only():
    filters = validate_filters(
        [spec("email", "contains", "50%_off\\"), spec("id", "neq", "3"), spec("email", "is_empty")], COLUMNS
    )
    where, params = compile_where(filters, "sqlite")
    assert where == (
        ' WHERE "email" LIKE ? ESCAPE \'\\\' AND ("id" <> ? OR "id" IS NULL) AND ("email" IS NULL OR "email" = \'\')'
    )
    assert params == ["%50\\%\\_off\\\\%", 3]


def test_it_compiles_postgresql_values_as_quoted_literals_with_casts():
    """No bound parameters on PostgreSQL: ADBC streams only a query without them."""
    filters = validate_filters(
        [spec("occurred_at", "between", "2026-01-01", "2026-02-01T00:00:00Z"), spec("email", "eq", "o'neil\\x")],
        COLUMNS,
    )
    where, params = compile_where(filters, "postgresql")
    assert where == (
        " WHERE \"occurred_at\" BETWEEN E'2026-01-01T00:00:00+00:00'::timestamptz"
        " AND E'2026-02-01T00:00:00+00:00'::timestamptz AND \"email\" = E'o''neil\\\\x'::text"
    )
    assert params == []
    contains, _ = compile_where(validate_filters([spec("email", "contains", "50%")], COLUMNS), "postgresql")
    assert contains == " WHERE \"email\" ILIKE E'%50\\\\%%'::text ESCAPE E'\\\\'"


def test_it_refuses_a_nul_character_in_a_value():
    with pytest.raises(ValidationError, match="NUL character"):
        validate_filters([spec("email", "eq", "a\x00b")], COLUMNS)


def test_it_quotes_column_names_that_contain_quotes():
    columns = [{"name": 'we"ird', "type": "text"}]
    where, _ = compile_where(validate_filters([spec('we"ird', "eq", "x")], columns), "sqlite")
    assert where == ' WHERE "we""ird" = ?'
