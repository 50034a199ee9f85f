"""Reading the MOTChallenge layout: exact columns, clipping, and errors that name file and line."""

from __future__ import annotations

import pytest

from scene_model.data.mot_format import list_sequences, read_gt, read_seqinfo
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
