"""Reading the MOTChallenge layout: exact columns, clipping, and errors that name file and line."""

from __future__ import annotations

import numpy as np
import pytest

from scene_model.data.mot_format import _parse_gt, _parse_gt_lines, list_sequences, read_gt, read_seqinfo
from scene_model.errors import DataFormatError

SEQINFO = "[Sequence]\nname={name}\nimDir=img1\nframeRate=20\nseqLength=10\nimWidth=100\nimHeight=50\nimExt=.jpg\n"


def make_sequence(root, split="train", name="seq1", gt="1,1,10,10,20,20,1,1,1\n"):
    seq = root / split / name
    (seq / "gt").mkdir(parents=True)
    (seq / "img1").mkdir()
    (seq / "seqinfo.ini").write_text(SEQINFO.format(name=name))
    (seq / "gt" / "gt.txt").write_text(gt)
    return seq


def test_gt_columns_clipping_and_dropped_boxes(tmp_path):
    seq = make_sequence(
        tmp_path,
        gt="3,7,90,40,20,20,1,1,0.5\n1,2,-5,-5,10,10,1,1,1\n2,3,10,10,0,5,1,1,1\n2,4,1,1,5,5,0,1,1\n",
    )
    gt = read_gt(read_seqinfo(seq))
    assert gt.frames.tolist() == [1, 3]  # sorted, mark 0 ignored, zero-size dropped
    assert gt.track_ids.tolist() == [2, 7]
    assert gt.boxes.tolist() == [[0, 0, 5, 5], [90, 40, 10, 10]]  # clipped to 100x50
    assert gt.num_dropped == 1
    assert gt.visibility.tolist() == [1.0, 0.5]


def test_malformed_gt_line_names_file_and_line(tmp_path):
    seq = make_sequence(tmp_path, gt="1,1,10,10,20,20,1,1,1\n2,1,10,ten,20,20,1,1,1\n")
    with pytest.raises(DataFormatError, match=r"gt\.txt:2: .*not a number"):
        read_gt(read_seqinfo(seq))


def test_missing_seqinfo_names_the_directory_and_layout(tmp_path):
    seq = make_sequence(tmp_path)
    (seq / "seqinfo.ini").unlink()
    with pytest.raises(DataFormatError, match=r"seq1/seqinfo\.ini.*expected the MOTChallenge"):
        read_seqinfo(seq)


def test_missing_root_and_split(tmp_path):
    with pytest.raises(DataFormatError, match="does not exist"):
        list_sequences(tmp_path / "nowhere", "train")
    with pytest.raises(DataFormatError, match=r"split directory .*val"):
        make_sequence(tmp_path)
        list_sequences(tmp_path, "val")


def test_seqmap_chooses_sequences_and_names_unknown_ones(tmp_path):
    make_sequence(tmp_path, name="a")
    make_sequence(tmp_path, name="b")
    (tmp_path / "train_seqmap.txt").write_text("name\nb\n")
    assert [p.name for p in list_sequences(tmp_path, "train")] == ["b"]
    (tmp_path / "train_seqmap.txt").write_text("name\nb\nzzz\n")
    with pytest.raises(DataFormatError, match="zzz"):
        list_sequences(tmp_path, "train")


def test_gt_lines_in_any_order_with_sparse_ids_and_optional_columns(tmp_path):
    seq = make_sequence(tmp_path, gt="4,900,1,1,5,5\n 2 , 17 ,1,1,5,5,1,1,0.25\n\n4,3,1,1,5,5,1,1,1\n")
    gt = read_gt(read_seqinfo(seq))
    assert gt.frames.tolist() == [2, 4, 4]
    assert gt.track_ids.tolist() == [17, 900, 3]
    assert gt.visibility.tolist() == [0.25, 1.0, 1.0]


def test_fast_and_line_by_line_parsers_agree(tmp_path):
    rng = np.random.default_rng(0)
    table = np.column_stack([rng.integers(1, 11, 300), rng.integers(1, 50, 300), rng.uniform(-10, 90, (300, 4)),
                             rng.integers(0, 2, 300), rng.integers(1, 3, 300), rng.uniform(0, 1, 300)])
    path = tmp_path / "gt.txt"
    path.write_text("".join(",".join(f"{v:g}" for v in row) + "\n" for row in table))
    assert np.array_equal(_parse_gt(path), _parse_gt_lines(path)[0])
    assert np.allclose(_parse_gt(path), table, atol=1e-4)


def test_a_track_twice_in_one_frame_names_both_lines(tmp_path):
    seq = make_sequence(tmp_path, gt="1,1,10,10,20,20,1,1,1\n2,5,1,1,5,5,1,1,1\n1,1,30,10,20,20,0,1,1\n2,5,9,9,5,5,1,1,1\n")
    with pytest.raises(DataFormatError, match=r"gt\.txt:4: track id 5 appears twice in frame 2 \(first at line 2\)"):
        read_gt(read_seqinfo(seq))


def test_frame_beyond_seqlength_and_bad_frame_number(tmp_path):
    seq = make_sequence(tmp_path, gt="1,1,10,10,20,20,1,1,1\n\n11,1,10,10,20,20,1,1,1\n12,1,10,10,20,20,1,1,1\n")
    gt = seq / "gt" / "gt.txt"
    with pytest.raises(DataFormatError, match=rf"^{gt}:3: frame 11 is beyond seqLength=10 of {seq / 'seqinfo.ini'}$"):
        read_gt(read_seqinfo(seq))
    (seq / "gt" / "gt.txt").write_text("1,1,10,10,20,20,1,1,1\n0,1,10,10,20,20,1,1,1\n")
    with pytest.raises(DataFormatError, match=r"gt\.txt:2: frame must be a 1-based integer"):
        read_gt(read_seqinfo(seq))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda text: text.replace("[Sequence]\n", ""), r":1: 'name=seq1' comes before any section header; expected \[Sequence\] first$"),
        (lambda text: text + "name=again\n", r":9: name appears twice in \[Sequence\]$"),
        (lambda text: text + "a line without a value\n", r":9: not a 'key=value' line: 'a line without a value'$"),
    ],
)
def test_a_seqinfo_that_is_not_an_ini_file_is_one_line_naming_file_and_line(tmp_path, change, message):
    seq = make_sequence(tmp_path)
    seqinfo = seq / "seqinfo.ini"
    seqinfo.write_text(change(seqinfo.read_text()))
    with pytest.raises(DataFormatError, match=rf"^{seqinfo}{message}") as raised:
        read_seqinfo(seq)
    assert "\n" not in str(raised.value) and "PosixPath" not in str(raised.value)


def test_short_gt_line_names_file_and_line(tmp_path):
    seq = make_sequence(tmp_path, gt="1,1,10,10,20,20,1,1,1\n1,2,3\n")
    with pytest.raises(DataFormatError, match=r"gt\.txt:2: expected at least 6 comma-separated columns"):
        read_gt(read_seqinfo(seq))


def test_seqmap_listing_a_sequence_twice_names_the_line(tmp_path):
    make_sequence(tmp_path, name="a")
    (tmp_path / "train_seqmap.txt").write_text("name\na\n\na\n")
    with pytest.raises(DataFormatError, match=r"train_seqmap\.txt:4: sequence 'a' is listed twice"):
        list_sequences(tmp_path, "train")
