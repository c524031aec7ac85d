"""Data layer: image sources, robust reading, batching, letterbox + inverse (against Ultralytics when installed)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from qyolo_trt.data import ImageLoader, letterbox, list_images, read_image, to_tensor, unletterbox_boxes
from qyolo_trt.errors import QyoloError

# (h, w): tall, wide, square, tiny, larger than 640, a 1-pixel-thin strip
SHAPES = [(480, 200), (200, 480), (300, 300), (7, 5), (1080, 1920), (1, 900)]


def image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def write_images(folder, names, shape=(40, 60)):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        cv2.imwrite(str(folder / name), image(*shape, seed=i))
    return [folder / n for n in names]


# ---------------------------------------------------------------- sources


def test_folder_is_recursive_sorted_and_images_only(tmp_path):
    write_images(tmp_path / "sub", ["b.png"])
    write_images(tmp_path, ["c.jpg", "a.JPG"])
    (tmp_path / "notes.txt").write_text("x")
    assert list_images(tmp_path) == [tmp_path / "a.JPG", tmp_path / "c.jpg", tmp_path / "sub" / "b.png"]
    assert list_images(tmp_path, limit=2) == [tmp_path / "a.JPG", tmp_path / "c.jpg"]


def test_yolo_dataset_reads_images_not_labels(tmp_path):
    imgs = write_images(tmp_path / "images" / "train", ["1.jpg", "2.jpg"])
    (tmp_path / "labels" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train" / "1.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    write_images(tmp_path / "labels", ["stray.png"])  # not under images/: ignored
    assert list_images(tmp_path) == imgs


def test_txt_list_relative_to_list_folder(tmp_path):
    imgs = write_images(tmp_path / "imgs", ["x.png", "y.png"])
    lst = tmp_path / "calib.txt"
    lst.write_text(f"# calibration set\nimgs/y.png\n\n{imgs[0]}\n")
    assert list_images(lst) == [imgs[1], imgs[0]]


def test_coco_json_in_image_id_order(coco_dir):
    paths = list_images(coco_dir / "instances.json")
    data = json.loads((coco_dir / "instances.json").read_text())
    by_id = sorted(data["images"], key=lambda im: im["id"])
    assert [p.name for p in paths] == [im["file_name"] for im in by_id]
    assert len(paths) == 96 and all(p.is_file() for p in paths)


def test_bad_sources_are_clean_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "data.csv").write_text("a,b\n")
    (tmp_path / "bad.json").write_text("{not json")
    for src, words in [
        (tmp_path / "missing", "no such file"),
        (tmp_path / "empty", "no images found"),
        (tmp_path / "data.csv", "not an image source"),
        (tmp_path / "bad.json", "not a readable COCO json"),
    ]:
        with pytest.raises(QyoloError, match=words):
            list_images(src)


# ---------------------------------------------------------------- reading


def test_grayscale_rgba_and_16bit_are_converted(tmp_path):
    rgb = image(20, 30)
    gray = rgb[..., 0]
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    cv2.imwrite(str(tmp_path / "rgba.png"), np.dstack([rgb, np.full(gray.shape, 7, np.uint8)]))
    cv2.imwrite(str(tmp_path / "deep.png"), rgb.astype(np.uint16) * 257)  # 16-bit: v*257 >> 8 == v
    np.testing.assert_array_equal(read_image(tmp_path / "gray.png"), np.dstack([gray] * 3))
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), rgb)
    np.testing.assert_array_equal(read_image(tmp_path / "deep.png"), rgb)


def test_unreadable_files_are_skipped_and_counted(tmp_path):
    good = write_images(tmp_path, ["a.png", "c.png", "e.png"])
    (tmp_path / "b.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    (tmp_path / "d.png").write_bytes(b"")
    loader = ImageLoader(list_images(tmp_path), imgsz=(64, 64), batch=2)
    batches = list(loader)
    assert [b.images.shape for b in batches] == [(2, 3, 64, 64), (1, 3, 64, 64)]
    assert [p for b in batches for p in b.paths] == good
    assert loader.skipped == [tmp_path / "b.jpg", tmp_path / "d.png"] and loader.loaded == 3


def test_limit_counts_readable_images(tmp_path):
    write_images(tmp_path, ["b.png", "c.png", "d.png"])
    (tmp_path / "a.jpg").write_bytes(b"garbage")
    loader = ImageLoader(list_images(tmp_path), imgsz=(32, 32), limit=2)
    assert [p.name for b in loader for p in b.paths] == ["b.png", "c.png"]


def test_folder_of_corrupt_jpegs_is_an_error(tmp_path):
    for i in range(3):
        (tmp_path / f"{i}.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(i, 64)))
    loader = ImageLoader(list_images(tmp_path), imgsz=(64, 64))
    with pytest.raises(QyoloError, match="no readable image"):
        list(loader)
    assert len(loader.skipped) == 3


def test_batch_is_rgb_over_255_nchw_float32(tmp_path):
    img = image(64, 64)
    cv2.imwrite(str(tmp_path / "x.png"), img)
    (batch,) = list(ImageLoader([tmp_path / "x.png"], imgsz=(64, 64)))
    assert batch.images.dtype == np.float32 and batch.images.shape == (1, 3, 64, 64)
    np.testing.assert_allclose(batch.images[0], img[..., ::-1].transpose(2, 0, 1) / 255.0, atol=1e-7)


# ---------------------------------------------------------------- letterbox (pure)


def test_letterbox_centres_and_pads_with_114():
    out, info = letterbox(np.zeros((100, 200, 3), np.uint8), (640, 640))
    assert out.shape == (640, 640, 3) and info.ratio == 3.2 and info.pad == (0, 160)
    assert (out[:160] == 114).all() and (out[-160:] == 114).all() and (out[160:480] == 0).all()


@pytest.mark.parametrize(("h", "w"), SHAPES)
def test_letterbox_auto_pads_to_stride_multiple(h, w):
    out, info = letterbox(image(h, w), (640, 640), auto=True)
    assert out.shape[0] % 32 == 0 and out.shape[1] % 32 == 0
    assert max(out.shape[:2]) == 640 and min(out.shape[:2]) < 640 + 32


@pytest.mark.parametrize(("h", "w"), SHAPES)
def test_box_round_trip(h, w):
    """Boxes drawn in the original image, mapped into the input by the recorded gain + pad, come back exactly."""
    rng = np.random.default_rng(h * w)
    x, y = np.sort(rng.uniform(0, w, (5, 2))), np.sort(rng.uniform(0, h, (5, 2)))
    boxes = np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], 1).astype(np.float32)
    _, info = letterbox(image(h, w), (640, 640))
    gx, gy = info.gain
    boxed = boxes * [gx, gy, gx, gy] + [*info.pad, *info.pad]
    np.testing.assert_allclose(unletterbox_boxes(boxed, info), boxes, rtol=1e-5, atol=1e-3)


def test_unletterbox_clips_to_the_image():
    _, info = letterbox(image(100, 200), (640, 640))
    np.testing.assert_array_equal(unletterbox_boxes(np.array([[-50, 0, 700, 640]]), info), [[0, 0, 200, 100]])


# ---------------------------------------------------------------- letterbox vs Ultralytics


@pytest.fixture(scope="module")
def ultralytics_ops():
    pytest.importorskip("torch", reason="export extra not installed (tools/install_export.sh)")
    augment = pytest.importorskip("ultralytics.data.augment", reason="export extra not installed")
    from ultralytics.utils.ops import scale_boxes

    return augment.LetterBox, scale_boxes


@pytest.mark.parametrize("auto", [False, True])
@pytest.mark.parametrize(("h", "w"), SHAPES)
def test_letterbox_equals_ultralytics(ultralytics_ops, h, w, auto):
    LetterBox, _ = ultralytics_ops
    img = image(h, w)
    ours, _ = letterbox(img, (640, 640), auto=auto)
    np.testing.assert_array_equal(ours, LetterBox((640, 640), auto=auto, stride=32)(image=img))


@pytest.mark.parametrize(("h", "w"), SHAPES)
def test_unletterbox_equals_ultralytics_scale_boxes(ultralytics_ops, h, w):
    _, scale_boxes = ultralytics_ops
    boxes = np.random.default_rng(w).uniform(-20, 660, (50, 4)).astype(np.float32)
    _, info = letterbox(image(h, w), (640, 640))
    theirs = scale_boxes((640, 640), boxes.copy(), (h, w))
    np.testing.assert_allclose(unletterbox_boxes(boxes, info), theirs, rtol=1e-6, atol=1e-4)


def test_to_tensor_equals_ultralytics_preprocess(ultralytics_ops, bus_jpg):
    """Real image: our read + letterbox + to_tensor == Ultralytics' predictor preprocessing."""
    import torch
    from ultralytics.engine.predictor import BasePredictor

    predictor = BasePredictor(overrides={"imgsz": 640})
    predictor.imgsz, predictor.device = (640, 640), torch.device("cpu")
    predictor.model = type("M", (), {"fp16": False, "stride": 32, "pt": False, "dynamic": False, "imx": False})()
    predictor.args.rect = False
    img = read_image(bus_jpg)
    theirs = predictor.preprocess([img]).numpy()
    np.testing.assert_array_equal(to_tensor(letterbox(img, (640, 640))[0])[None], theirs)
