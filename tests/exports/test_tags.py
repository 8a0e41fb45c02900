from datetime import timedelta

import pytest

from exports.templatetags.exports_tags import duration


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.43, "0.4 s"), (12.4, "12 s"), (185, "3 min 05 s"), (2 * 3600 + 14 * 60 + 3, "2 h 14 min")],
)
def test_it_shows_durations_as_people_read_them(seconds, text):
    assert duration(timedelta(seconds=seconds)) == text


def test_it_shows_a_dash_for_a_run_not_started():
    assert duration(None) == "—"
