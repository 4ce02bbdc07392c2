"""Tests of sae.eval.bench: the protocol, honest byte counts, the layered stream."""

import json
import pathlib

import numpy as np
import pytest

from sae.eval import bench, classical, results
from sae.images import load_image, save_png

KODAK = pathlib.Path(__file__).resolve().parents[2] / "shared/data/kodak"
# A few points per codec, low to high rate, so the tests take seconds.
FEW = {"jpeg": (10, 50, 90), "webp": (10, 50, 90), "jpeg2000": (0.1, 0.5, 2.0),
       "avif": (10, 40, 70), "jxl": (10.0, 3.0, 1.0)}
RATES = (0.1, 0.31, 0.78, 1.61)


def _small_images():
  """Two crops (landscape, portrait; sizes not multiples of 16) of Kodak."""
  if (KODAK / "kodim01.png").is_file() and (KODAK / "kodim04.png").is_file():
    return [("kodim01.png", load_image(KODAK / "kodim01.png")[100:220,
                                                               200:376]),
            ("kodim04.png", load_image(KODAK / "kodim04.png")[300:476,
                                                               150:270])]
  rng = np.random.default_rng(1)
  images = []
  for name, (h, w) in (("a.png", (120, 176)), ("b.png", (176, 120))):
    y, x = np.mgrid[0:h, 0:w]
    smooth = np.stack([x, y, x + y], -1) * (200.0 / (h + w))
    images.append((name, np.clip(smooth + rng.normal(0, 15, smooth.shape), 0,
                                 255).astype(np.uint8)))
  return images


def _write_images(folder, images):
  folder.mkdir()
  for name, image in images:
    save_png(image, folder / name)
  return folder


@pytest.fixture(scope="module")
def images():
  return _small_images()


def _available(name):
  reason = classical.CODECS[name].available()
  return pytest.param(name, marks=pytest.mark.skipif(reason is not None,
                                                     reason=str(reason)))


@pytest.mark.parametrize("name", [_available(n) for n in FEW])
def test_reported_bytes_are_the_bytes_written(name, images):
  codec = classical.CODECS[name]()
  summary = bench.bench_codec(codec, images, FEW[name])
  assert summary["name"] == name
  assert summary["qualities"] == list(FEW[name])
  assert len(summary["layers"]) == len(FEW[name])
  for (image_name, image), row in zip(images, summary["per_image"]):
    h, w = image.shape[:2]
    assert (row["image"], row["height"], row["width"]) == (image_name, h, w)
    for i, quality in enumerate(FEW[name]):
      written = codec.encode(image, quality)
      assert row["bytes"][i] == len(written)
      assert row["bpp"][i] * h * w / 8 == pytest.approx(len(written))
      assert codec.decode(written).shape == image.shape
    assert row["bpp"] == sorted(row["bpp"])
  for key in results.RESULT_KEYS:
    assert summary["results"][key] == pytest.approx(
        np.mean([r[key] for r in summary["per_image"]], axis=0))


def test_layered_jpeg2000_prefixes_improve_with_layers(images):
  codec = classical.LayeredJpeg2000()
  summary = bench.bench_codec(codec, images, RATES)
  assert summary["layers"] == ["1 layer", "2 layers", "3 layers", "4 layers"]
  assert summary["qualities"] == pytest.approx(RATES)
  for (_, image), row in zip(images, summary["per_image"]):
    h, w = image.shape[:2]
    stream = codec.encode(image, RATES)
    for k in range(1, len(RATES) + 1):
      part = codec.truncate(stream, k)
      assert row["bytes"][k - 1] == len(part)
      assert row["bpp"][k - 1] * h * w / 8 == pytest.approx(len(part))
      assert codec.decode(part).shape == image.shape
    for key in ("bytes", "psnr-rgb", "ms-ssim-rgb"):
      assert all(a < b for a, b in zip(row[key], row[key][1:])), key
    # Near the targets: OpenJPEG's rate control is loose on small crops.
    assert row["bpp"] == pytest.approx(RATES, rel=0.25)


def test_layer_rates_per_image_from_sae_results(tmp_path, images):
  own = [0.2, 0.5, 1.0]
  sae = {"results": {"bpp": [0.1, 0.3, 0.9]},
         "per_image": [{"image": images[0][0], "bpp": own}]}
  (tmp_path / "sae.json").write_text(json.dumps(sae))
  rates = bench.sae_layer_rates(tmp_path / "sae.json")
  assert rates(images[0][0]) == own
  assert rates("other.png") == [0.1, 0.3, 0.9]
  summary = bench.bench_codec(classical.LayeredJpeg2000(), images, rates)
  assert summary["per_image"][0]["target_bpp"] == own
  assert summary["per_image"][1]["target_bpp"] == [0.1, 0.3, 0.9]


def test_cli_writes_one_results_json_per_codec(tmp_path, images, capsys):
  folder = _write_images(tmp_path / "images", images)
  out = tmp_path / "out"
  assert bench.main(["--images", str(folder), "--codecs",
                     "jpeg,jpeg2000-layers", "--layer-rates", "0.2,0.8",
                     "--out-dir", str(out), "--no-progress"]) == 0
  for name, points in (("jpeg", len(classical.Jpeg.qualities)),
                       ("jpeg2000-layers", 2)):
    summary = json.loads((out / f"{name}.json").read_text())
    assert set(summary) >= {"name", "description", "layers", "qualities",
                            "results", "per_image"}
    assert set(summary["results"]) == set(results.RESULT_KEYS)
    assert all(len(v) == points for v in summary["results"].values())
    assert len(summary["per_image"]) == 2
  assert "jpeg2000-layers" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["--codecs", "jpeg,nope"],
                                  ["--layer-rates", "0.5,0.2"],
                                  ["--layer-rates", "0.1", "--sae-results",
                                   "x.json"]])
def test_bad_usage_exits_2(argv, capsys):
  with pytest.raises(SystemExit) as e:
    bench.main(argv)
  assert e.value.code == 2
  assert capsys.readouterr().err.startswith("error: ")


def test_missing_sae_results_is_an_error(tmp_path, images, capsys):
  folder = _write_images(tmp_path / "images", images[:1])
  assert bench.main(["--images", str(folder), "--codecs",
                     "jpeg2000-layers", "--sae-results",
                     str(tmp_path / "missing.json"), "--out-dir",
                     str(tmp_path), "--no-progress"]) == 2
  assert "missing.json" in capsys.readouterr().err
