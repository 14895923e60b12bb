"""The usage pages' bar chart: an inline SVG's geometry, so no script is needed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chat.usage.figures import Day

CHART_WIDTH = 720
CHART_HEIGHT = 200
CHART_LEFT = 64  # room for the axis labels
CHART_BOTTOM = 24


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


def chart(days: list[Day]) -> dict[str, Any]:
    """Geometry of an inline SVG bar chart (prompt below completion), no script needed."""
    plot_width = CHART_WIDTH - CHART_LEFT - 8
    plot_height = CHART_HEIGHT - CHART_BOTTOM - 12
    top = max((d.total for d in days), default=0) or 1
    slot = plot_width / max(len(days), 1)
    base = CHART_HEIGHT - CHART_BOTTOM
    bars = []
    for index, day in enumerate(days):
        prompt_height = plot_height * day.prompt / top
        completion_height = plot_height * day.completion / top
        bars.append(
            Bar(
                day=day,
                x=round(CHART_LEFT + index * slot + slot * 0.15, 1),
                width=round(slot * 0.7, 1),
                prompt_y=round(base - prompt_height, 1),
                prompt_height=round(prompt_height, 1),
                completion_y=round(base - prompt_height - completion_height, 1),
                completion_height=round(completion_height, 1),
                label=day.day.strftime("%b %d") if index % 7 == 0 or index == len(days) - 1 else "",
            )
        )
    return {
        "bars": bars,
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "left": CHART_LEFT,
        "base": base,
        "top_y": base - plot_height,
        "max": top if any(d.total for d in days) else 0,
        "label_y": CHART_HEIGHT - 6,
        "right": CHART_WIDTH - 8,
        "axis_x": CHART_LEFT - 6,
        "max_label_y": base - plot_height + 4,
    }
