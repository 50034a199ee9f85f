"""TrackEval as DanceTrack runs it: devkit numbers reproduced, ground truth scores 100, perturbations cost."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from scene_model.errors import DataFormatError
from scene_model.tools.evaluate import main as evaluate_cli
from scene_model.tracking.mot_results import write_results
from scene_model.tracking.trackeval_metrics import HEADLINE, METRIC_FIELDS, evaluate_mot

MOTMETRICS_DATA = Path(pytest.importorskip("motmetrics").__file__).parent / "data"
# The MOTChallenge devkit's numbers for the CEM tracker's output that py-motmetrics ships with
# (its README, "two results taken from MOTChallenge Matlab devkit"): MOTA and IDF1 in percent.
DEVKIT = {"TUD-Campus": {"MOTA": 52.6, "IDF1": 55.8}, "TUD-Stadtmitte": {"MOTA": 56.4, "IDF1": 64.5}}


def seqinfo(name: str, length: int) -> str:
    return (
        f"[Sequence]\nname={name}\nimDir=img1\nframeRate=25\nseqLength={length}\n"
        "imWidth=640\nimHeight=480\nimExt=.jpg\n"
    )


@pytest.fixture(scope="module")
def tud(tmp_path_factory):
    """The two TUD sequences in the DanceTrack layout: <root>/val/<seq>/{seqinfo.ini,gt/gt.txt}, results in tracker/."""
    root = tmp_path_factory.mktemp("tud")
    results = root / "tracker"
    results.mkdir()
    for name in DEVKIT:
        gt = np.loadtxt(MOTMETRICS_DATA / name / "gt.txt", delimiter=",")
        test = np.loadtxt(MOTMETRICS_DATA / name / "test.txt", delimiter=",")
        (root / "val" / name / "gt").mkdir(parents=True)
        shutil.copy(MOTMETRICS_DATA / name / "gt.txt", root / "val" / name / "gt" / "gt.txt")
        (root / "val" / name / "seqinfo.ini").write_text(seqinfo(name, int(max(gt[:, 0].max(), test[:, 0].max()))))
        shutil.copy(MOTMETRICS_DATA / name / "test.txt", results / f"{name}.txt")
    return root


def test_reproduces_the_devkit_mota_and_idf1(tud):
    evaluation = evaluate_mot(tud / "val", tud / "tracker")
    assert list(evaluation.sequences) == ["TUD-Campus", "TUD-Stadtmitte"]
    for name, expected in DEVKIT.items():
        for metric, value in expected.items():
            assert evaluation.sequences[name][metric] == pytest.approx(value, abs=0.1), (name, metric)
    assert evaluation.sequences["TUD-Campus"]["IDSW"] == 7
    assert set(evaluation.combined) == set(METRIC_FIELDS)


def test_cli_prints_the_table_and_writes_csv_and_json(tud, capsys):
    evaluate_cli([str(tud / "val"), str(tud / "tracker")])
    printed = capsys.readouterr().out
    header = printed.splitlines()[0].split()
    assert header == ["sequence", *HEADLINE]
    assert any(line.startswith("TUD-Campus") and "52.646" in line for line in printed.splitlines())
    with open(tud / "tracker_metrics.csv") as handle:
        table = list(csv.DictReader(handle))
    assert [row["sequence"] for row in table] == ["TUD-Campus", "TUD-Stadtmitte", "COMBINED"]
    assert float(table[1]["IDF1"]) == pytest.approx(64.5, abs=0.1)
    payload = json.loads((tud / "tracker_metrics.json").read_text())
    assert payload["combined"]["GT_Dets"] == 359 + 1156
    assert payload["sequences"]["TUD-Stadtmitte"]["MOTA"] == pytest.approx(56.4, abs=0.1)


def test_seqmap_chooses_the_sequences(tud, tmp_path):
    seqmap = tmp_path / "campus_seqmap.txt"
    seqmap.write_text("name\nTUD-Campus\n")
    evaluation = evaluate_mot(tud / "val", tud / "tracker", seqmap=seqmap)
    assert list(evaluation.sequences) == ["TUD-Campus"]
    assert evaluation.combined["MOTA"] == pytest.approx(evaluation.sequences["TUD-Campus"]["MOTA"])
    with pytest.raises(DataFormatError, match="seqmap .*nothing.txt does not exist"):
        evaluate_mot(tud / "val", tud / "tracker", seqmap=tmp_path / "nothing.txt")


def test_cli_reports_a_bad_results_folder_as_one_message(tud, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(tud / "tracker", broken)
    (broken / "TUD-Stadtmitte.txt").write_text("1,1,1,1,1,1,1\nbad line\n")
    with pytest.raises(SystemExit) as exit_info:
        evaluate_cli([str(tud / "val"), str(broken)])
    assert exit_info.value.code == 1
    assert "TUD-Stadtmitte.txt:2" in capsys.readouterr().err


# --- ground truth of the tiny synthetic set as "results", exact and perturbed ----------------------
def gt_rows(root: Path) -> tuple[Path, str, np.ndarray]:
    gt_dir = root / "val"
    seq = sorted(p.name for p in gt_dir.iterdir() if p.is_dir())[0]
    table = np.loadtxt(gt_dir / seq / "gt" / "gt.txt", delimiter=",", ndmin=2)
    return gt_dir, seq, np.concatenate([table[:, :6], np.ones((len(table), 1))], axis=1)


def score(tmp_path, gt_dir, seq, rows, name="res"):
    return evaluate_mot(gt_dir, write_results(tmp_path / name, {seq: rows}))


def test_ground_truth_as_results_scores_100(tiny_root, tmp_path):
    gt_dir, seq, rows = gt_rows(tiny_root)
    combined = score(tmp_path, gt_dir, seq, rows).combined
    for metric in ("HOTA", "DetA", "AssA", "MOTA", "IDF1", "LocA"):
        assert combined[metric] == pytest.approx(100.0, abs=1e-6), metric
    assert combined["IDSW"] == 0 and combined["FP"] == 0 and combined["FN"] == 0


def test_an_id_swap_costs_two_switches_and_only_association(tiny_root, tmp_path):
    gt_dir, seq, rows = gt_rows(tiny_root)
    ids = np.unique(rows[:, 1]).astype(int)
    both = [i for i in ids if set(range(1, 17)) <= set(rows[rows[:, 1] == i, 0].astype(int))][:2]
    assert len(both) == 2, "the tiny val sequence should have two tracks present throughout"
    a, b = both
    late = rows[:, 0] >= 9
    swapped = rows.copy()
    swapped[late & (rows[:, 1] == a), 1], swapped[late & (rows[:, 1] == b), 1] = b, a
    combined = score(tmp_path, gt_dir, seq, swapped).combined
    assert combined["IDSW"] == 2
    assert combined["MOTA"] == pytest.approx(100 * (1 - 2 / len(rows)), abs=1e-6)
    assert combined["DetA"] == pytest.approx(100.0, abs=1e-6)
    assert combined["AssA"] < 90 and combined["HOTA"] < 95 and combined["IDF1"] < 90


def test_dropped_boxes_cost_recall_not_precision(tiny_root, tmp_path):
    gt_dir, seq, rows = gt_rows(tiny_root)
    kept = rows[rows[:, 0] % 2 == 1]
    combined = score(tmp_path, gt_dir, seq, kept).combined
    assert combined["DetRe"] == pytest.approx(100 * len(kept) / len(rows), abs=1e-6)
    assert combined["DetPr"] == pytest.approx(100.0, abs=1e-6)
    assert combined["FN"] == len(rows) - len(kept) and combined["FP"] == 0


def test_localisation_error_lowers_hota_monotonically(tiny_root, tmp_path):
    gt_dir, seq, rows = gt_rows(tiny_root)
    hota, loca = [], []
    for shift in (0.0, 1.0, 3.0, 6.0):
        moved = rows.copy()
        moved[:, 2:4] += shift
        combined = score(tmp_path, gt_dir, seq, moved, name=f"shift{int(shift)}").combined
        hota.append(combined["HOTA"])
        loca.append(combined["LocA"])
    assert hota[0] == pytest.approx(100.0) and all(x > y for x, y in zip(hota, hota[1:], strict=False)), hota
    assert all(x > y for x, y in zip(loca, loca[1:], strict=False)), loca


def test_missing_sequence_file_and_folder_are_named(tiny_root, tmp_path):
    gt_dir, seq, rows = gt_rows(tiny_root)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match=rf"missing result file .*empty/{seq}\.txt"):
        evaluate_mot(gt_dir, tmp_path / "empty")
    with pytest.raises(DataFormatError, match="results folder .*nowhere does not exist"):
        evaluate_mot(gt_dir, tmp_path / "nowhere")
