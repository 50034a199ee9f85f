"""Every recipe in README.md and docs/ is checked: each ``python train.py ...`` composes with its
overrides, each ``python -m`` tool answers ``--help``, each path and config key named exists, each
link between pages resolves, and the tracker table lists the options with their defaults."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re
import shlex
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from scene_model.tools.compose import compose_run_config
from scene_model.tracking.options import TrackerOptions, option_names

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
GROUPS = ("data", "model", "module", "head", "optimizer", "scheduler", "trainer", "logger", "callbacks", "eval", "paths",
          "training", "viz", "hydra", "hparams_search", "experiment", "debug")
# Placeholders a recipe may hold instead of a real value; a recipe with them is composed with a stand-in.
PLACEHOLDER = re.compile(r"\.\.\.|<[^>]+>|\bCKPT\b|\bROOT\b")


def page_text(page: Path) -> str:
    return page.read_text()


def code_lines(page: Path) -> list[str]:
    """The lines of indented or fenced code blocks, and of inline code spans, of a page."""
    text = page_text(page)
    lines = [line.strip() for line in text.splitlines() if line.startswith("    ")]
    lines += re.findall(r"`([^`\n]+)`", text)
    fenced = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
    lines += [line.strip() for block in fenced for line in block.splitlines()]
    return lines


def commands(prefix: str) -> list[tuple[str, str]]:
    """(page, command) for every code line that runs ``prefix`` (comments and shell pieces cut off)."""
    found = []
    for page in PAGES:
        for line in code_lines(page):
            line = line.split("  #")[0].split(" # ")[0].split("&&")[-1].strip()
            line = re.sub(r"^(\S*/)?(srun |OMP_NUM_THREADS=\S+ |\.venv/bin/)*", "", line)
            if line.startswith(prefix):
                found.append((page.name, line.rstrip("\\").strip()))
    return sorted(set(found))


TRAIN_RECIPES = commands("python train.py")
TOOL_RECIPES = commands("python -m ")


def stand_in(value: str) -> str:
    return PLACEHOLDER.sub("x", value)


def overrides_of(command: str) -> list[str]:
    """The Hydra overrides of a ``python train.py`` line, sweeps reduced to their first value."""
    words = [w for w in shlex.split(command)[2:] if w not in ("-m", "--multirun") and not w.startswith("--")]
    words = [stand_in(w) for w in words if "=" in w]
    parsed = OverridesParser.create().parse_overrides(words)
    result = []
    for override, word in zip(parsed, words, strict=True):
        if override.is_sweep_override() and not override.is_hydra_override():
            first = next(iter(override.sweep_string_iterator()))
            result.append(f"{override.get_key_element()}={first}")
        else:
            result.append(word)
    return result


def test_the_pages_hold_recipes():
    assert len(TRAIN_RECIPES) >= 10 and len(TOOL_RECIPES) >= 5


@pytest.mark.parametrize(("page", "command"), TRAIN_RECIPES)
def test_every_train_recipe_composes(page, command):
    overrides = overrides_of(command)
    if any(o.startswith(("data=dancetrack", "experiment=dancetrack")) for o in overrides) and not any(
        o.startswith("data.root=") for o in overrides
    ):
        overrides.append("data.root=/datasets/DanceTrack")
    cfg = compose_run_config(overrides, return_hydra_config=True)
    assert cfg.model is not None, (page, command)


def tool_module(command: str) -> str:
    return shlex.split(command)[2]


@pytest.mark.parametrize("module", sorted({tool_module(c) for _, c in TOOL_RECIPES}))
def test_every_tool_the_pages_name_answers_help(module):
    import importlib

    main = importlib.import_module(module if not module.startswith("bench") else "bench.__main__").main
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0 and "usage:" in out.getvalue()


PATH = re.compile(r"`((?:scene_model|conf|docs|tests|bench|\.ci)/[\w./-]*)`")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_path_a_page_names_exists(page):
    missing = [p for p in PATH.findall(page_text(page)) if not (REPO / p.rstrip("/")).exists() and "<" not in p and "*" not in p]
    assert not missing, missing


LINK = re.compile(r"\]\(([^)#\s]+\.md)(#[\w-]+)?\)")


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings."""
    heads = re.findall(r"^#+ (.+)$", page_text(page), flags=re.M)
    return {"#" + re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in heads}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_between_pages_resolves(page):
    broken = []
    for target, anchor in LINK.findall(page_text(page)):
        path = (page.parent / target).resolve()
        if not path.is_file():
            broken.append(target)
        elif anchor and anchor not in anchors(path):
            broken.append(target + anchor)
    assert not broken, broken


KEY = re.compile(r"`((?:" + "|".join(GROUPS) + r")\.[\w.]+)(?:=[^`]*)?`")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_config_key_a_page_names_exists(page):
    cfg = compose_run_config(["hparams_search=optuna"], return_hydra_config=True)
    optional = {"logger.mlflow", "logger.wandb", "logger.csv", "data.root"}
    missing = []
    for key in KEY.findall(page_text(page)):
        key = key.rstrip(".")
        if key.startswith(tuple(optional)) or key.startswith(("hydra.", "experiment.", "debug.")):
            continue
        if OmegaConf.select(cfg, key, default="__absent__", throw_on_missing=False) == "__absent__":
            missing.append(key)
    assert not missing, missing


def tracker_tables() -> list[dict[str, str]]:
    """Every table headed ``| option | default | meaning |``: {option: default as written}."""
    tables = []
    for page in PAGES:
        for block in re.findall(r"^\| option \| default \| meaning \|\n((?:\|.*\n)+)", page_text(page), flags=re.M):
            rows = re.findall(r"^\| `(\w+)` \| ([^|]+?) \|", block, flags=re.M)
            tables.append({name: default.strip().strip("`") for name, default in rows})
    return tables


def test_the_tracker_table_lists_every_option_with_its_default():
    tables = tracker_tables()
    assert len(tables) == 1, "one table of the tracker's options"
    rows = tables[0]
    defaults = dataclasses.asdict(TrackerOptions())
    assert set(rows) == set(option_names())
    for name, shown in rows.items():
        assert str(defaults[name]).lower() == shown.lower() or float(shown) == defaults[name], (name, shown)
