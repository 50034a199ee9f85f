"""python -m scene_model.tools.track: a video or a folder of images tracked as validation tracks a sequence."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from scene_model.data.collate import collate_tracking
from scene_model.data.dataset import ClipDataset, SequenceRecord
from scene_model.data.decode import FrameGeometry
from scene_model.data.transforms import ClipTransform
from scene_model.data.video import ShortVideoError, ShortVideoWarning, open_source
from scene_model.errors import CheckpointError
from scene_model.runtime.run import train
from scene_model.runtime.trained import load_trained
from scene_model.tools.track import main as track_main
from scene_model.tracking import SequenceTracker, TrackerOptions
from scene_model.tracking.mot_results import format_rows
from scene_model.tracking.stream import stream_windows
from scene_model.tracking.track_source import track_source
from scene_model.tracking.video_output import VideoWriter
from tests.conftest import REPO, compose_config, tiny_overrides
from tests.test_reliability_faults import remount_read_only, small_tmpfs  # noqa: F401  (a fixture)

FPS = 20
TRACKER = ["eval.tracker.start_threshold=0.0", "eval.tracker.keep_threshold=0.0"]  # every query writes: much to compare


def encode(frames: list[Path], path: Path) -> Path:
    width, height = Image.open(frames[0]).size
    with VideoWriter(path, width, height, FPS) as writer:
        for frame in frames:
            writer.write(np.asarray(Image.open(frame).convert("RGB")))
    return path


def faststart_mp4(path: Path, frames: int, size: tuple[int, int] = (64, 48)) -> Path:
    """An H.264 mp4 of noise frames with its index (moov) at the front, as streaming sites write them:
    a cut copy still opens and states the full frame count."""
    width, height = size
    noise = np.random.default_rng(0)
    with av.open(str(path), "w", format="mp4", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for _ in range(frames):
            pixels = noise.integers(0, 256, (height, width, 3), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    return path


def cut_in_half(path: Path, to: Path) -> Path:
    to.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return to


def cut_after_packet(path: Path, packets: int, to: Path) -> Path:
    """The file up to the end of its ``packets``-th frame: the stream ends cleanly there, no decoding error."""
    with av.open(str(path)) as container:
        ends = sorted(p.pos + p.size for p in container.demux(video=0) if p.size)
    to.write_bytes(path.read_bytes()[: ends[packets - 1]])
    return to


def decoded_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def as_sequence(frames: list[np.ndarray], seq_dir: Path) -> Path:
    """Frames as a DanceTrack sequence folder (lossless PNG), the layout evaluation reads."""
    (seq_dir / "img1").mkdir(parents=True)
    for number, pixels in enumerate(frames, start=1):
        Image.fromarray(pixels).save(seq_dir / "img1" / f"{number:08d}.png")
    height, width = frames[0].shape[:2]
    (seq_dir / "seqinfo.ini").write_text(
        f"[Sequence]\nname={seq_dir.name}\nimDir=img1\nframeRate={FPS}\nseqLength={len(frames)}\n"
        f"imWidth={width}\nimHeight={height}\nimExt=.png\n"
    )
    return seq_dir


def run_track(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scene_model.tools.track", *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=300,
    )


def track_here(capsys, *args) -> subprocess.CompletedProcess:
    """The command in this process (faster than a subprocess): its exit code, stdout and stderr."""
    try:
        track_main([str(a) for a in args])
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, captured.out, captured.err)


@pytest.fixture(scope="module")
def trained(tiny_root, tmp_path_factory) -> Path:
    """A debug=fast fit; its last checkpoint."""
    run = tmp_path_factory.mktemp("fit")
    train(compose_config(tiny_overrides(tiny_root) + ["debug=fast", "eval.every_n_epochs=0", *TRACKER], run))
    return run / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def video(tiny_root, tmp_path_factory) -> Path:
    """The frames of two synthetic sequences of one size, one after the other, as an mp4."""
    frames = sorted((tiny_root / "train" / "synth0001" / "img1").glob("*.jpg"))
    frames += sorted((tiny_root / "val" / "synth0003" / "img1").glob("*.jpg"))
    assert Image.open(frames[0]).size == Image.open(frames[-1]).size
    return encode(frames, tmp_path_factory.mktemp("video") / "clip.mp4")


@pytest.mark.slow
def test_a_video_is_tracked_as_evaluation_tracks_its_frames(trained, video, tmp_path):
    out = tmp_path / "out"
    done = run_track(video, "--ckpt", trained, "--out", out, "--device", "cpu")
    assert done.returncode == 0, done.stderr
    summary = done.stdout.strip().splitlines()[-1]
    assert summary.startswith("clip: 32 frames, ") and " tracks, " in summary, summary
    assert "frame/s" in done.stderr  # the progress bar

    # The reference: the same frames as a sequence on disk, through the tracker's own windows.
    frames = decoded_frames(video)
    assert len(frames) == 32
    seq_dir = as_sequence(frames, tmp_path / "seq" / "val" / "clip")
    run = load_trained(trained, "cpu")
    datamodule, tracker = run.datamodule, SequenceTracker(TrackerOptions.from_mapping(run.cfg.eval.tracker))
    record = SequenceRecord.load(seq_dir, require_gt=False, class_ids=(1,))
    dataset = ClipDataset.evaluation([record], datamodule.clip_len, datamodule.eval_transform, datamodule.val_stride, False)
    windows = DataLoader(dataset, batch_size=datamodule.eval_batch_size, collate_fn=collate_tracking)
    expected = tracker.track(run.module.predict, windows, ["clip"], run.module.association)["clip"]
    text = (out / "clip.txt").read_text()
    assert len(expected) >= 32 and text == format_rows(expected)
    boxes = np.loadtxt(out / "clip.txt", delimiter=",", ndmin=2)
    height, width = frames[0].shape[:2]
    assert (boxes[:, 2] + boxes[:, 4]).max() <= width + 0.01 and (boxes[:, 3] + boxes[:, 5]).max() <= height + 0.01

    written = out / "clip.mp4"
    with av.open(str(written)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (width, height)
        assert stream.average_rate == FPS
    annotated = decoded_frames(written)
    assert len(annotated) == len(frames)
    assert np.abs(annotated[0].astype(int) - frames[0].astype(int)).mean() > 0.5  # boxes drawn on it

    # The same frames as a folder of images give the same result file.
    folder = run_track(seq_dir, "--ckpt", trained, "--out", tmp_path / "from_folder", "--no-video")
    assert folder.returncode == 0, folder.stderr
    assert (tmp_path / "from_folder" / "clip.txt").read_text() == text
    assert not (tmp_path / "from_folder" / "clip.mp4").exists()


@pytest.mark.slow
def test_tracker_flags_override_the_checkpoint(trained, video, tmp_path, capsys):
    done = track_here(capsys, video, "--ckpt", trained, "--out", tmp_path, "--start-threshold", "1.0", "--keep-threshold", "1.0")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "clip.txt").read_text() == ""
    assert len(decoded_frames(tmp_path / "clip.mp4")) == 32  # the frames, without a box
    assert "0 tracks" in done.stdout


@pytest.mark.slow
def test_bad_inputs_give_one_line_and_keep_earlier_results(trained, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "clip.txt").write_text("1,1,0,0,1,1,1,-1,-1,-1\n")
    fake = tmp_path / "clip.mp4"
    fake.write_text("not a video\n")
    done = track_here(capsys, fake, "--ckpt", trained, "--out", out)
    assert done.returncode == 1
    assert done.stderr.strip() == f"NotAVideoError: {fake} is not a video FFmpeg can read (Invalid data found when processing input)"
    assert (out / "clip.txt").read_text() == "1,1,0,0,1,1,1,-1,-1,-1\n"

    folder = tmp_path / "clip"
    folder.mkdir()
    for number in range(1, 6):
        Image.new("RGB", (64, 48), (number * 20, 0, 0)).save(folder / f"{number:08d}.jpg")
    (folder / "00000004.jpg").write_bytes((folder / "00000004.jpg").read_bytes()[:200])
    done = track_here(capsys, folder, "--ckpt", trained, "--out", out)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith(f"UnreadableFrameError: corrupt or truncated image {folder / '00000004.jpg'}")
    assert not any("Traceback" in line for line in lines)
    assert (out / "clip.txt").read_text() == "1,1,0,0,1,1,1,-1,-1,-1\n" and not (out / "clip.mp4").exists()

    foreign = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"net.weight": torch.zeros(2)}, "hyper_parameters": {"lr": 0.1}}, foreign)
    done = track_here(capsys, folder, "--ckpt", foreign, "--out", out)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"CheckpointError: checkpoint {foreign} was not written by this version of train.py: it holds no run config "
        "(hyper_parameters.config with model, module, data, eval)"
    )


@pytest.mark.slow
def test_a_checkpoint_of_another_model_is_named(trained, tmp_path):
    checkpoint = torch.load(trained, weights_only=True)
    checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if "decoder" not in k}
    torch.save(checkpoint, tmp_path / "cut.ckpt")
    with pytest.raises(CheckpointError, match=r"cut.ckpt was written by another model: .* tensor\(s\) missing"):
        load_trained(tmp_path / "cut.ckpt", "cpu")


@pytest.mark.parametrize(("length", "clip_len", "stride", "batch_size"), [(10, 4, 3, 2), (11, 4, 3, 3), (3, 4, 3, 2), (9, 3, 1, 4), (4, 4, 3, 1)])
def test_stream_windows_are_the_evaluation_windows(tiny_root, length, clip_len, stride, batch_size):
    """Same frame numbers, batches and pixels as ClipDataset's evaluation windows of the same frames."""
    seq_dir = tiny_root / "val" / "synth0003"
    info = SequenceRecord.load(seq_dir, require_gt=False, class_ids=(1,)).info
    record = SequenceRecord.load(seq_dir, require_gt=False, class_ids=(1,))
    record.info = type(info)(**{**info.__dict__, "length": length})
    transform = ClipTransform.evaluation(48, 400, 1.0)
    dataset = ClipDataset.evaluation([record], clip_len, transform, stride, False)
    expected = [dataset[i] for i in range(len(dataset))]
    source = open_source(seq_dir / "img1")
    geometry = transform.plan(info.width, info.height)
    produced = []

    def frames():
        for number, pixels in enumerate(source.frames(geometry), start=1):
            if number > length:
                return
            produced.append(number)
            yield pixels

    batches = []
    for batch in stream_windows(frames(), info.name, (info.height, info.width), clip_len, stride, transform, geometry, batch_size):
        assert len(produced) <= int(batch.frame_indices.max()) + 1  # lazy: no frame read ahead of its window
        batches.append(batch)
    assert [len(b) for b in batches] == [len(c) for c in np.array_split(np.arange(len(expected)), range(batch_size, len(expected), batch_size))]
    windows = [(b, i) for b in batches for i in range(len(b))]
    assert len(windows) == len(expected)
    for (batch, i), clip in zip(windows, expected, strict=True):
        assert batch.frame_indices[i].tolist() == clip.frame_indices.tolist()
        assert torch.equal(batch.frames[i, : len(clip.frame_indices)], clip.frames)
        assert batch.orig_sizes[i].tolist() == [info.height, info.width]


def test_writer_keeps_frame_count_rate_and_odd_sizes(tmp_path):
    path = tmp_path / "odd.mp4"
    with VideoWriter(path, 33, 21, 30000 / 1001) as writer:
        for value in range(7):
            writer.write(np.full((21, 33, 3), value * 30, np.uint8))
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert float(stream.average_rate) == pytest.approx(30000 / 1001, rel=1e-4)
        assert (stream.codec_context.width, stream.codec_context.height) == (34, 22)
    assert len(decoded_frames(path)) == 7
    assert not list(tmp_path.glob(".*partial"))


def test_folder_source_reads_seqinfo_and_rejects_another_size(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    Image.new("RGB", (40, 30)).save(folder / "a.png")
    Image.new("RGB", (40, 32)).save(folder / "b.png")
    source = open_source(folder, fps=12.5)
    assert (source.info.name, source.info.width, source.info.height, float(source.info.fps)) == ("frames", 40, 30, 12.5)
    frames = source.frames(FrameGeometry.full(40, 30, (15, 20)))
    assert next(frames).shape == (15, 20, 3)
    with pytest.raises(Exception, match=r"b.png is 40x32, the first image a.png 40x30"):
        next(frames)


# --- hostile inputs ------------------------------------------------------------------------------
def test_a_cut_video_stops_at_the_frame_that_does_not_decode_unless_short_is_allowed(tmp_path):
    whole = faststart_mp4(tmp_path / "whole.mp4", 16)
    assert len(list(open_source(whole).frames())) == 16
    half = cut_in_half(whole, tmp_path / "half.mp4")
    assert open_source(half).info.num_frames == 16  # the index at the front still states them all
    with pytest.raises(ShortVideoError, match=rf"^{half}: decoding stopped at frame (\d+) \(Invalid data found when "
                                              rf"processing input\) after \d+ of the 16 frames its container states; "
                                              rf"the file is cut short or damaged$") as raised:
        list(open_source(half).frames())
    stopped = int(raised.value.args[0].split("frame ")[1].split(" ")[0])
    assert 1 < stopped < 16
    with pytest.warns(ShortVideoWarning, match=rf"after {stopped - 1} of the 16 frames .*; tracking those {stopped - 1}$"):
        assert len(list(open_source(half, allow_short=True).frames())) == stopped - 1

    # Cut between two frames the decoder sees no error: the count the container states tells.
    nine = cut_after_packet(whole, 9, tmp_path / "nine.mp4")
    with pytest.raises(ShortVideoError, match=rf"^{nine}: the video ends after 9 of the 16 frames its container states;"):
        list(open_source(nine).frames())
    with pytest.warns(ShortVideoWarning, match="the video ends after 9 of the 16 frames"):
        assert len(list(open_source(nine, allow_short=True).frames())) == 9


def test_track_refuses_a_cut_video_keeps_earlier_results_and_tracks_it_when_allowed(trained, tmp_path, capsys):
    half = cut_in_half(faststart_mp4(tmp_path / "whole.mp4", 16), tmp_path / "clip.mp4")
    out = tmp_path / "out"
    out.mkdir()
    (out / "clip.txt").write_text("1,1,0,0,1,1,1,-1,-1,-1\n")
    done = track_here(capsys, half, "--ckpt", trained, "--out", out)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"ShortVideoError: {half}: decoding stopped at frame ") and last.endswith(
        "of the 16 frames its container states; the file is cut short or damaged; --allow-short tracks the frames decoded"), last
    assert (out / "clip.txt").read_text() == "1,1,0,0,1,1,1,-1,-1,-1\n" and not (out / "clip.mp4").exists()

    done = track_here(capsys, half, "--ckpt", trained, "--out", out, "--allow-short")
    assert done.returncode == 0, done.stderr
    decoded = int(last.split(" after ")[1].split(" ")[0])
    warned = [line for line in done.stderr.replace("\r", "\n").splitlines() if line.startswith("ShortVideoWarning: ")]
    assert len(warned) == 1 and warned[0].endswith(f"after {decoded} of the 16 frames its container states; tracking those {decoded}")
    assert done.stdout.startswith(f"clip: {decoded} frames, ")
    assert len(decoded_frames(out / "clip.mp4")) == decoded


def test_track_source_counts_frames_without_a_progress_bar(trained, tmp_path):
    run = load_trained(trained, "cpu")
    tracker = SequenceTracker(TrackerOptions.from_mapping(run.cfg.eval.tracker))
    source = open_source(faststart_mp4(tmp_path / "clip.mp4", 7))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        done = track_source(source, run.module.predict, run.module.association, run.datamodule, tracker, tmp_path / "out", video=False, progress=False)
    assert done.frames == 7 and done.results.is_file()


@pytest.mark.parametrize("where", ["a file", "under a file", "read-only", "full"])
def test_an_output_folder_that_cannot_be_written_is_found_before_the_checkpoint_is_read(where, tmp_path, request, capsys):
    """The checkpoint does not exist: the one line is about the output folder, so it came first."""
    video = faststart_mp4(tmp_path / "clip.mp4", 2)
    out, cause = {
        "a file": (tmp_path / "clip.mp4", "it is a file, not a folder"),
        "under a file": (tmp_path / "clip.mp4" / "tracks", "Not a directory"),
        "read-only": ("read-only", "Read-only file system"),
        "full": ("full", "No space left on device"),
    }[where]
    if out in ("read-only", "full"):
        disk = request.getfixturevalue("small_tmpfs")
        (disk / "earlier").mkdir()
        (disk / "earlier" / "clip.txt").write_text("kept\n")
        if out == "full":
            with open(disk / "filler", "wb") as filler, pytest.raises(OSError, match="No space left"):
                filler.write(bytes(2 << 20))  # 2 MiB on the 1 MiB disk
        else:
            remount_read_only(disk)
        out = disk / "earlier" / "new"
    done = track_here(capsys, video, "--ckpt", tmp_path / "missing.ckpt", "--out", out, "--device", "cpu")
    assert done.returncode == 1
    assert done.stderr.strip() == f"OutputError: cannot write output folder {out}: {cause}"
    assert not list(out.parent.glob(".probe-*"))
    if where in ("read-only", "full"):
        assert (out.parent / "clip.txt").read_text() == "kept\n"
