"""The ``python -m scene_model.tools.*`` commands answer a mistake as ``train.py`` does: one line on stderr
naming the path or flag, exit code 1, nothing written or damaged; what they write is checked first."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
from pathlib import Path

import pytest

import scene_model.tools
from scene_model.runtime.run import train
from scene_model.tools import benchmark, evaluate, oracle, synthetic, threshold_sweep, track
from scene_model.tools.cli import tool_main
from tests.conftest import compose_config, tiny_overrides
from tests.test_reliability_faults import remount_read_only, small_tmpfs  # noqa: F401  (a fixture)

TOOLS = {"benchmark": benchmark, "evaluate": evaluate, "oracle": oracle, "synthetic": synthetic,
         "threshold_sweep": threshold_sweep, "track": track}


def run_tool(capsys, main, *args) -> subprocess.CompletedProcess:
    """A command in this process (faster than a subprocess): its exit code, stdout and stderr."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, captured.out, captured.err)


def assert_one_line(done: subprocess.CompletedProcess, line: str) -> None:
    """``line`` (or, ending in '...', a line starting so) is all of stderr, and the command exited with 1."""
    assert done.returncode == 1, done.stderr[-3000:]
    assert done.stderr.count("\n") == 1, done.stderr[-3000:]
    if line.endswith("..."):
        assert done.stderr.startswith(line[:-3]), done.stderr
    else:
        assert done.stderr == line + "\n"


@pytest.fixture(scope="module")
def checkpoint(tiny_root, tmp_path_factory) -> Path:
    """A debug=fast fit of the tiny model; its last checkpoint."""
    run = tmp_path_factory.mktemp("fit")
    train(compose_config(tiny_overrides(tiny_root) + ["debug=fast", "eval.every_n_epochs=0"], run))
    return run / "checkpoints" / "last.ckpt"


def test_every_tool_answers_through_the_shared_entry_point():
    modules = {m.name: importlib.import_module(f"scene_model.tools.{m.name}") for m in pkgutil.iter_modules(scene_model.tools.__path__)}
    names = [name for name, module in modules.items() if hasattr(module, "main")]  # the rest are the tools' helpers
    assert sorted(names) == sorted(TOOLS)
    for name in names:
        assert modules[name].main.__wrapped__.__module__ == f"scene_model.tools.{name}", name  # wrapped by cli.tool_main


# --- a data root that does not exist or is a file ----------------------------------------------------
@pytest.mark.parametrize("tool", ["threshold_sweep", "oracle"])
@pytest.mark.parametrize("root", ["missing", "a file"])
def test_a_data_root_that_is_missing_or_a_file_is_one_line(tool, root, checkpoint, tmp_path, capsys):
    path = tmp_path / "data"
    if root == "a file":
        path.write_text("not a data set\n")
    args = [checkpoint, "--root", path, "--device", "cpu"] if tool == "threshold_sweep" else [path]
    done = run_tool(capsys, TOOLS[tool].main, *args)
    found = "does not exist" if root == "missing" else "is a file, expected a directory"
    assert_one_line(done, f"DataFormatError: data root {path} {found}; expected the MOTChallenge/DanceTrack layout...")
    if root == "a file":
        assert path.read_text() == "not a data set\n"


# --- what a command writes is checked before it reads anything ----------------------------------------
def output_cases(tmp_path: Path) -> list[tuple[str, list, str]]:
    """(tool, arguments, the line): each names an input that does not exist, so the line shows which came first."""
    a_file, a_folder = tmp_path / "a_file", tmp_path / "a_folder"
    a_file.write_text("kept\n")
    a_folder.mkdir()
    missing = tmp_path / "missing"
    return [
        ("benchmark", [missing, "--json", a_folder], f"OutputError: cannot write --json {a_folder}: it is a folder, not a file"),
        ("benchmark", [missing, "--json", a_file / "scores.json"],
         f"OutputError: cannot write --json {a_file / 'scores.json'}: Not a directory"),
        ("benchmark", [missing, "--data-dir", a_file], f"OutputError: cannot write --data-dir {a_file}: it is a file, not a folder"),
        ("evaluate", [missing, missing, "--csv", a_folder], f"OutputError: cannot write --csv {a_folder}: it is a folder, not a file"),
        ("evaluate", [missing, missing, "--json", a_file / "m.json"],
         f"OutputError: cannot write --json {a_file / 'm.json'}: Not a directory"),
        ("synthetic", ["--root", a_file], f"OutputError: cannot write --root {a_file}: it is a file, not a folder"),
        ("track", [missing, "--ckpt", missing, "--out", a_file], f"OutputError: cannot write output folder {a_file}: it is a file, not a folder"),
    ]


@pytest.mark.parametrize("case", range(7))
def test_an_output_that_cannot_be_written_is_one_line_before_any_work(case, tmp_path, capsys):
    tool, args, line = output_cases(tmp_path)[case]
    data_dir = tmp_path / "benchmark_data"
    if tool == "benchmark" and "--data-dir" not in args:
        args += ["--data-dir", data_dir]
    done = run_tool(capsys, TOOLS[tool].main, *args)
    assert_one_line(done, line)
    assert (tmp_path / "a_file").read_text() == "kept\n" and not list((tmp_path / "a_folder").iterdir())
    assert not data_dir.exists()  # a file is checked before a folder is created
    assert not list(tmp_path.rglob(".probe-*"))


def test_benchmark_json_on_a_read_only_disk_is_found_before_scoring(small_tmpfs, tmp_path, capsys):  # noqa: F811
    (small_tmpfs / "scores.json").write_text('{"earlier": 1}\n')
    remount_read_only(small_tmpfs)
    target = small_tmpfs / "scores.json"
    done = run_tool(capsys, benchmark.main, tmp_path / "missing.ckpt", "--json", target, "--data-dir", tmp_path / "data")
    assert_one_line(done, f"OutputError: cannot write --json {target}: Read-only file system")
    assert target.read_text() == '{"earlier": 1}\n' and not (tmp_path / "data").exists()


# --- flags ------------------------------------------------------------------------------------------
def test_benchmark_seeds_name_what_they_accept(checkpoint, tmp_path, capsys):
    done = run_tool(capsys, benchmark.main, checkpoint, "--seeds", "4", "bogus", "--data-dir", tmp_path / "data")
    assert_one_line(done, "ConfigError: --seeds bogus: expected choosing (100-111), reporting (200-211) or generator "
                          "seeds (integers from 0)")
    assert not list((tmp_path / "data").iterdir())  # nothing generated


def test_benchmark_checks_every_checkpoint_before_it_scores_one(checkpoint, tmp_path, capsys):
    missing = tmp_path / "run_43" / "last.ckpt"
    done = run_tool(capsys, benchmark.main, checkpoint, missing, "--seeds", "4", "--data-dir", tmp_path / "data")
    assert_one_line(done, f"CheckpointError: checkpoint {missing} does not exist; give an existing file as CKPT, "
                          "a checkpoint written by train.py")
    assert not list((tmp_path / "data").iterdir())  # nothing generated, nothing scored


@pytest.mark.parametrize(
    ("tool", "args", "line"),
    [
        ("benchmark", ["x.ckpt", "--device", "bogus"],
         "ConfigError: argument --device: 'bogus' is not a device; expected cpu, cuda or cuda:N; "
         "see python -m scene_model.tools.benchmark --help"),
        ("threshold_sweep", ["x.ckpt", "--start", "high"],
         "ConfigError: argument --start: invalid float value: 'high'; see python -m scene_model.tools.threshold_sweep --help"),
        ("synthetic", ["--root", "x", "--size", "640"],
         "ConfigError: argument --size: '640' is not WIDTHxHEIGHT in pixels, e.g. 384x216; "
         "see python -m scene_model.tools.synthetic --help"),
        ("evaluate", ["gt", "res", "--columns", "HOTTA"], "ConfigError: argument --columns: invalid choice: 'HOTTA' ..."),
        ("oracle", ["root", "--nosuch"], "ConfigError: unrecognized arguments: --nosuch; see python -m scene_model.tools.oracle --help"),
        ("track", ["clip.mp4"], "ConfigError: the following arguments are required: --ckpt, --out; "
                                "see python -m scene_model.tools.track --help"),
    ],
)
def test_a_flag_given_a_value_it_does_not_accept_is_one_line(tool, args, line, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    done = run_tool(capsys, TOOLS[tool].main, *args)
    assert_one_line(done, line)
    assert not list(tmp_path.iterdir())  # nothing written


def test_oracle_data_options_are_checked_like_the_run_config(tiny_root, capsys):
    done = run_tool(capsys, oracle.main, tiny_root, "--data", "nosuch=1")
    assert_one_line(done, "ConfigError: --data: Could not override 'data.nosuch'.")
    done = run_tool(capsys, oracle.main, tiny_root, "--data", "clip_len=abc")
    assert_one_line(done, "ConfigError: data.clip_len: expected int, got 'abc' (str)")


def test_an_os_error_on_a_path_is_one_line_naming_it_ctrl_c_stops_and_a_bug_keeps_its_traceback(capsys):
    @tool_main
    def reads(argv):
        try:
            open(argv[0]).read()
        except OSError as err:
            raise RuntimeError("a library's wrapping") from err

    @tool_main
    def fails(argv):
        raise ValueError("a bug")

    @tool_main
    def interrupted(argv):
        raise KeyboardInterrupt

    done = run_tool(capsys, reads, "/nonexistent/seqmap.txt")
    assert_one_line(done, "FileNotFoundError: /nonexistent/seqmap.txt: No such file or directory")
    with pytest.raises(ValueError, match="a bug"):
        fails([])
    done = run_tool(capsys, interrupted)
    assert (done.returncode, done.stderr) == (130, "stopped by SIGINT\n")


@pytest.mark.parametrize(("flags", "line"), [
    (["--root", "r", "--seeds", "100"], "ConfigError: --root and --seeds exclude each other; see python -m scene_model.tools.threshold_sweep --help"),
    (["--split", "test", "--seeds", "100"],
     "ConfigError: --split test and --seeds exclude each other (the seeds' splits are val splits); see python -m scene_model.tools.threshold_sweep --help"),
    (["--data-dir", "{tmp}/d"], "ConfigError: --data-dir is where the --seeds' val splits are kept: give --seeds with it; see python -m scene_model.tools.threshold_sweep --help"),
])
def test_threshold_sweep_flags_that_exclude_each_other_are_one_line_before_any_work(capsys, tmp_path, flags, line):
    done = run_tool(capsys, threshold_sweep.main, tmp_path / "none.ckpt", *(f.format(tmp=tmp_path) for f in flags))
    assert_one_line(done, line)  # said before the checkpoint (which does not exist) is read
