"""Box conversions: the pixel <-> normalised ones live in boxes.py and nowhere else, and they invert."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from scene_model.boxes import (
    canvas_pixels,
    clip_xywh,
    from_canvas_pixels,
    from_pixels,
    image_scale,
    to_pixels,
)

PACKAGE = Path(__file__).resolve().parents[1] / "scene_model"


def hand_conversions(source: str) -> list[int]:
    """Lines that build a (W, H, W, H)-like vector: ``[w, h, w, h]`` (any four items repeating a pair) or
    ``[*s, *s]``, what scaling boxes between pixels and 0..1 by hand takes."""
    tree = ast.parse(source)
    indexing = {id(node.slice) for node in ast.walk(tree) if isinstance(node, ast.Subscript)}  # x[:, None, :, None]
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.List | ast.Tuple) or id(node) in indexing:
            continue
        items = [ast.dump(item) for item in node.elts]
        pair = len(items) == 4 and items[0] == items[2] and items[1] == items[3] and items[0] != items[1]
        starred = len(items) == 2 and all(isinstance(e, ast.Starred) for e in node.elts) and items[0] == items[1]
        if pair or starred:
            lines.append(node.lineno)
    return lines


def test_no_module_but_boxes_scales_boxes_by_hand():
    found = {
        str(path.relative_to(PACKAGE)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "boxes.py" and (lines := hand_conversions(path.read_text()))
    }
    assert not found, f"scale boxes through scene_model/boxes.py: {found}"


@pytest.mark.parametrize(
    "source",
    [
        "scale = torch.tensor([width, height, width, height])",
        "boxes * torch.tensor([*scale, *scale])",
        "xyxy / (w, h, w, h)",
        "box = xyxy[:, None] * [scale_x, scale_y, scale_x, scale_y]",
    ],
)
def test_the_check_catches_a_hand_conversion(source):
    assert hand_conversions(source) == [1]


def test_canvas_pixels_invert_and_clip():
    cxcywh = torch.tensor([[0.5, 0.5, 0.2, 0.4], [0.1, 0.9, 0.1, 0.1]])
    xyxy = canvas_pixels(cxcywh, (100, 200))  # height 100, width 200
    torch.testing.assert_close(xyxy, torch.tensor([[80.0, 30.0, 120.0, 70.0], [10.0, 85.0, 30.0, 95.0]]))
    torch.testing.assert_close(from_canvas_pixels(xyxy, (100, 200)), cxcywh)
    assert canvas_pixels(torch.tensor([[0.98, 0.5, 0.1, 0.1]]), (100, 200))[0, 2] == 200  # clipped at the right edge


def test_image_scale_maps_the_canvas_to_the_original_image():
    """An image of 50 x 100 in a canvas of 60 x 120, resized from 500 x 1000: the canvas' corner is
    the original's (1200, 600), beyond the image, and a box inside comes back."""
    scale, limits = image_scale((60, 120), torch.tensor([50, 100]), torch.tensor([500, 1000]))
    torch.testing.assert_close(scale, torch.tensor([1200.0, 600.0, 1200.0, 600.0]))
    torch.testing.assert_close(limits, torch.tensor([1000.0, 500.0, 1000.0, 500.0]))
    box = torch.tensor([[100.0, 50.0, 300.0, 250.0]])
    torch.testing.assert_close(to_pixels(from_pixels(box, scale), scale, limits), box)


def test_clip_xywh_keeps_boxes_inside_the_image():
    boxes = torch.tensor([[-10.0, 5.0, 30.0, 20.0], [90.0, 40.0, 30.0, 30.0], [120.0, 0.0, 5.0, 5.0]], dtype=torch.float64)
    clipped = clip_xywh(boxes, (50, 100))
    torch.testing.assert_close(clipped, torch.tensor([[0.0, 5.0, 20.0, 20.0], [90.0, 40.0, 10.0, 10.0], [100.0, 0.0, 0.0, 5.0]], dtype=torch.float64))
