"""The usage chart's geometry (chat/usage/chart.py): its axis figure fits beside the axis."""

from __future__ import annotations

from datetime import date

import pytest

from chat.usage.chart import LABEL_CHAR_WIDTH, LABEL_FONT, chart, short_number
from chat.usage.figures import Day


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (950, "950"),
        (999, "999"),
        (51_000, "51k"),
        (492_345, "492k"),
        (999_999, "1M"),
        (1_234_567, "1.2M"),
        (9_960_000, "10M"),
        (999_999_999, "1G"),
    ],
)
def test_the_axis_figure_is_short_and_rounds_up_to_the_next_unit(value: int, text: str) -> None:
    assert short_number(value) == text


@pytest.mark.parametrize("peak", [950, 492_345, 999_999, 1_234_567, 987_654_321])
def test_the_axis_figure_fits_left_of_the_axis_at_a_phones_label_size(peak: int) -> None:
    # A phone draws the chart at about half size with labels of LABEL_FONT units
    # (chat/usage.css): "492k" was cut off there.
    days = [Day(date(2026, 11, 1), peak // 2, peak - peak // 2, peak, 0)]
    drawn = chart(days)
    label_width = len(drawn["max_text"]) * LABEL_CHAR_WIDTH * LABEL_FONT
    assert label_width <= drawn["axis_x"]
