from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError

from exports.layout import LayoutContext, render_template, safe_segment, validate_template

CONTEXT = LayoutContext(
    delivery_id="d-1",
    export_id="e-1",
    export_name="Weekly: opens/clicks",
    dataset_id="7",
    dataset_name="interactions",
    destination="Amazon S3",
    destination_instance_name="Marketing bucket",
    destination_instance_id="c-1",
    moment=datetime(2026, 11, 22, 9, 5, 7, 123000, tzinfo=UTC),
)


def test_it_renders_tokens_and_date_patterns():
    rendered = render_template("%EXPORT_NAME%_%DATETIME(YYYYMMdd_HHmmss.SSS)%/%EXPORT_TIME%", CONTEXT)
    assert rendered == "Weekly_opens_clicks_20261122_090507.123/exportTime=202611220905"


def test_it_renders_every_documented_token():
    template = "/".join(
        f"%{token}%"
        for token in (
            "DELIVERY_ID",
            "EXPORT_ID",
            "DATASET_ID",
            "DATASET_NAME",
            "DESTINATION",
            "DESTINATION_INSTANCE_NAME",
            "DESTINATION_INSTANCE_ID",
            "SANDBOX_NAME",
        )
    )
    validate_template(template, allow_slashes=True)
    assert render_template(template, CONTEXT) == "d-1/e-1/7/interactions/Amazon_S3/Marketing_bucket/c-1/prod"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("%NOPE%", "unknown token %NOPE%"),
        ("%DATETIME()%", "needs a date pattern"),
        ("a/../b", "'..' and '.' are not allowed"),
        ("/abs", "must be relative"),
        ("a:b", "unsafe characters"),
        ("a//b", "empty folder names"),
    ],
)
def test_it_refuses_unsafe_or_unknown_templates(template, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_template(template, allow_slashes=True)


def test_it_refuses_slashes_in_a_file_name():
    with pytest.raises(ValidationError, match="can't contain '/'"):
        validate_template("a/b", allow_slashes=False)


def test_it_makes_free_text_safe_for_file_names():
    assert safe_segment('Q4 "best" <customers>') == "Q4_best_customers_"
    assert safe_segment("...") == "export"
    assert safe_segment("Café ünïcode") == "Café_ünïcode"
