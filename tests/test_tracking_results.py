"""MOTChallenge result files: exact format, checks that name file and line, safe replacement, zip."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from scene_model.errors import DataFormatError
from scene_model.tracking.mot_results import format_rows, read_results, write_results, zip_results

ROWS = np.array([[2, 7, 10.0, 20.0, 30.5, 40.25, 0.9], [1, 3, 1.0, 2.0, 3.0, 4.0, 0.5], [1, 1, 5.0, 6.0, 7.0, 8.0, 1.0]])


def test_rows_are_sorted_by_frame_then_id_in_the_submission_format():
    lines = format_rows(ROWS).splitlines()
    assert lines == [
        "1,1,5.00,6.00,7.00,8.00,1.0000,-1,-1,-1",
        "1,3,1.00,2.00,3.00,4.00,0.5000,-1,-1,-1",
        "2,7,10.00,20.00,30.50,40.25,0.9000,-1,-1,-1",
    ]


def test_write_then_read_round_trip_and_empty_sequences(tmp_path):
    out = write_results(tmp_path / "val", {"seqA": ROWS, "seqB": np.zeros((0, 7))})
    assert sorted(p.name for p in out.iterdir()) == ["seqA.txt", "seqB.txt"]
    assert (out / "seqB.txt").read_text() == ""
    back = read_results(out / "seqA.txt", num_frames=2)
    np.testing.assert_allclose(back[np.lexsort((back[:, 1], back[:, 0]))], ROWS[np.lexsort((ROWS[:, 1], ROWS[:, 0]))])


def test_rewrite_replaces_the_folder_and_a_failed_write_keeps_the_old_one(tmp_path):
    write_results(tmp_path / "val", {"old": ROWS})
    write_results(tmp_path / "val", {"new": ROWS})
    assert [p.name for p in (tmp_path / "val").iterdir()] == ["new.txt"]
    with pytest.raises(ValueError):
        write_results(tmp_path / "val", {"broken": np.array([[1.0, 2.0]])})
    assert [p.name for p in (tmp_path / "val").iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["val"]  # no staging folder left behind


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,1,1,1,1,1\n", r"res\.txt:1: expected at least 7 comma-separated columns \(frame,id,.*found 6"),
        ("1,1,1,1,1,1,1\n1,2,1,x,1,1,1\n", r"res\.txt:2: a column is not a number"),
        ("0,1,1,1,1,1,1\n", r"res\.txt:1: frame must be a 1-based integer in 1\.\.5"),
        ("6,1,1,1,1,1,1\n", r"res\.txt:1: frame must be a 1-based integer in 1\.\.5"),
        ("1,1.5,1,1,1,1,1\n", r"res\.txt:1: id must be an integer"),
        ("1,1,1,1,-2,1,1\n", r"res\.txt:1: negative box size"),
        ("1,4,1,1,1,1,1\n\n1,4,2,2,1,1,1\n", r"res\.txt:3: track id 4 appears twice in frame 1 \(first at line 1\)"),
    ],
)
def test_bad_result_lines_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "res.txt"
    path.write_text(text)
    with pytest.raises(DataFormatError, match=message):
        read_results(path, num_frames=5)


def test_missing_result_file_is_named(tmp_path):
    with pytest.raises(DataFormatError, match=r"missing result file .*seqX\.txt"):
        read_results(tmp_path / "seqX.txt")


def test_zip_holds_the_sequence_files_at_its_root(tmp_path):
    out = write_results(tmp_path / "test", {"s1": ROWS, "s2": ROWS[:1]})
    archive = zip_results(out)
    assert archive == tmp_path / "test.zip"
    with zipfile.ZipFile(archive) as bundle:
        assert sorted(bundle.namelist()) == ["s1.txt", "s2.txt"]
        assert bundle.read("s2.txt").decode() == (out / "s2.txt").read_text()
