"""The many-seed benchmark drawn: HOTA of each split against its crossings, one series per checkpoint.

Where a mechanism wins or loses is at the crowded end (many crossings); the table averages that away,
the chart shows it. Written as a PNG beside the benchmark's JSON.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from scene_model.outputs import write_atomically
from scene_model.tracking.drawing import track_colour

SIZE = (900, 560)
MARGIN = (70, 40, 30, 60)  # left, top, right, bottom
POINT = 5


def draw_chart(series: Mapping[str, Sequence[tuple[float, float]]], title: str) -> Image.Image:
    """A scatter chart of (crossings, HOTA) points, one colour and legend line per series, each series'
    points joined in order of crossings."""
    image = Image.new("RGB", SIZE, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=14)
    left, top, right, bottom = MARGIN
    width, height = SIZE[0] - left - right, SIZE[1] - top - bottom
    points = [p for values in series.values() for p in values]
    x_max = max(50, math.ceil(max((x for x, _ in points), default=0) / 50) * 50)
    y_low = min(50, math.floor(min((y for _, y in points), default=50) / 10) * 10)
    place = lambda x, y: (left + width * x / x_max, top + height * (1 - (y - y_low) / (100 - y_low)))  # noqa: E731
    for y in range(y_low, 101, 10):
        _, py = place(0, y)
        draw.line([(left, py), (left + width, py)], fill="#dddddd")
        draw.text((left - 8, py), f"{y}", fill="black", font=font, anchor="rm")
    for x in range(0, x_max + 1, 25):
        px, _ = place(x, y_low)
        draw.line([(px, top + height), (px, top + height + 4)], fill="black")
        draw.text((px, top + height + 8), f"{x}", fill="black", font=font, anchor="mt")
    draw.rectangle([left, top, left + width, top + height], outline="black")
    draw.text((left + width / 2, SIZE[1] - 18), "crossings in the split (frames x pairs of dancers at IoU > 0.3)",
              fill="black", font=font, anchor="mm")
    draw.text((18, top + height / 2), "HOTA", fill="black", font=font, anchor="mm")
    draw.text((left, 12), title, fill="black", font=font)
    for index, (name, values) in enumerate(series.items()):
        colour = track_colour(index + 1)
        ordered = sorted(values)
        if len(ordered) > 1:
            draw.line([place(x, y) for x, y in ordered], fill=colour, width=1)
        for x, y in ordered:
            px, py = place(x, y)
            draw.ellipse([px - POINT, py - POINT, px + POINT, py + POINT], fill=colour)
        legend_y = top + 10 + 18 * index
        draw.rectangle([left + 10, legend_y - 5, left + 20, legend_y + 5], fill=colour)
        draw.text((left + 26, legend_y), name, fill="black", font=font, anchor="lm")
    return image


def write_chart(path: Path, series: Mapping[str, Sequence[tuple[float, float]]], title: str) -> Path:
    """``draw_chart`` written whole to ``path`` (PNG)."""
    chart = draw_chart(series, title)
    write_atomically(path, lambda partial: chart.save(partial, format="PNG"), "chart")
    return path
