"""The usage pages' bar chart: an inline SVG's geometry, so no script is needed."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from chat.usage.figures import Day

CHART_WIDTH = 720
CHART_HEIGHT = 200
AXIS_LABEL_CHARS = 4  # the longest figure short_number writes: "950", "492k", "1.2M"
AXIS_GAP = 6
CHART_RIGHT = 28  # room for the last day's label, centred under its bar
CHART_BOTTOM = 30
# The labels' largest font size in the SVG's own units: a phone shrinks the chart to
# about half, and chat/usage.css enlarges the labels there to stay readable.
LABEL_FONT = 20
LABEL_CHAR_WIDTH = 0.62  # of the font size, a generous average for "Dec 12"
LABEL_GAP = 12
# Room for the axis's figure at the largest label size, and a little air before the edge.
CHART_LEFT = math.ceil(AXIS_LABEL_CHARS * LABEL_CHAR_WIDTH * LABEL_FONT) + AXIS_GAP + 2


@dataclass
class Bar:
    day: Day
    x: float
    width: float
    prompt_y: float
    prompt_height: float
    completion_y: float
    completion_height: float
    label: str
    label_x: float


def day_label(day: Day) -> str:
    return f"{day.day:%b} {day.day.day}"


def label_step(slot: float, chars: int = 6) -> int:
    """Every how many days a label goes, so that no two labels touch even at
    the largest label size; in whole weeks when a week or more is needed."""
    width = chars * LABEL_CHAR_WIDTH * LABEL_FONT + LABEL_GAP
    step = max(1, math.ceil(width / slot))
    return step if step < 5 else 7 * math.ceil(step / 7)


def short_number(value: int) -> str:
    """The axis's figure in at most four characters: 950, 37k, 1.2M.

    The unit is chosen after rounding, so 999,999 is "1M", not "1000k".
    """
    if value < 1000:
        return str(value)
    for size, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        scaled = value / size
        text = f"{scaled:.1f}" if scaled < 9.95 else f"{scaled:.0f}"
        if float(text) >= 1:
            return text.removesuffix(".0") + suffix
    return str(value)


def chart(days: list[Day]) -> dict[str, Any]:
    """Geometry of an inline SVG bar chart (prompt below completion), no script needed.

    Labels go under every `label_step` days counted back from today, so today is
    always labelled and no two labels overlap.
    """
    plot_width = CHART_WIDTH - CHART_LEFT - CHART_RIGHT
    plot_height = CHART_HEIGHT - CHART_BOTTOM - 12
    top = max((d.total for d in days), default=0) or 1
    slot = plot_width / max(len(days), 1)
    step = label_step(slot)
    base = CHART_HEIGHT - CHART_BOTTOM
    bars = []
    for index, day in enumerate(days):
        prompt_height = plot_height * day.prompt / top
        completion_height = plot_height * day.completion / top
        x = CHART_LEFT + index * slot
        labelled = (len(days) - 1 - index) % step == 0
        bars.append(
            Bar(
                day=day,
                x=round(x + slot * 0.15, 1),
                width=round(slot * 0.7, 1),
                prompt_y=round(base - prompt_height, 1),
                prompt_height=round(prompt_height, 1),
                completion_y=round(base - prompt_height - completion_height, 1),
                completion_height=round(completion_height, 1),
                label=day_label(day) if labelled else "",
                label_x=round(x + slot / 2, 1),
            )
        )
    peak = top if any(d.total for d in days) else 0
    return {
        "bars": bars,
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "left": CHART_LEFT,
        "base": base,
        "top_y": base - plot_height,
        "max": peak,
        "max_text": short_number(peak),
        "label_y": CHART_HEIGHT - 4,
        "right": CHART_WIDTH - CHART_RIGHT,
        "axis_x": CHART_LEFT - AXIS_GAP,
        "max_label_y": base - plot_height + 4,
    }
