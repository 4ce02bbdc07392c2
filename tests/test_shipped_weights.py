"""The shipped weights still make the streams and the results they shipped with.

Default set (seconds): each shipped model codes two small generated images;
the SHA-256 of each stream, the bytes of each prefix ``truncate`` cuts and the
quality each prefix decodes to are compared with tests/shipped_streams.json
(written by tools/pin_shipped_streams.py). A changed weight, coding table or
stream byte fails here.

``pytest -m full`` (CI, and before shipping): every model re-evaluated on
the 24 Kodak images against the committed results, image by image.
"""

import hashlib
import json
import pathlib

import numpy as np
import pytest

from sae.stream import bitstream
from sae import checkpoints, codec
from sae.eval import evaluate, metrics
from sae.eval import results as results_schema
from sae.images import list_images, load_image
from tools import pin_shipped_streams as pins

ROOT = pathlib.Path(__file__).resolve().parents[1]
PINS = json.loads(pins.PINS.read_text())
RESULTS = {folder: pins.results_file(folder) for folder in pins.shipped_models()}
REGENERATE = ("if the change is deliberate (a new stream version, a model "
              "retrained), regenerate with python tools/pin_shipped_streams.py "
              "and commit tests/shipped_streams.json with it")


def _kodak():
  """The 24 Kodak images: ../shared beside the clone (CI), or kodak/ once the
  test scripts have downloaded them."""
  for folder in (ROOT.parent / "shared" / "data" / "kodak", ROOT / "kodak"):
    if len(list(folder.glob("kodim*.png"))) == 24:
      return folder
  return None


def test_every_shipped_model_is_pinned_and_has_results():
  assert pins.shipped_models() == sorted(PINS["models"])
  assert "weights/mse" in RESULTS and all(
      (ROOT / results).is_file() for results in RESULTS.values())


@pytest.mark.parametrize("name", sorted(PINS["images"]))
def test_generated_images_are_the_pinned_ones(name):
  spec = PINS["images"][name]
  image = pins.test_image(spec["height"], spec["width"], spec["seed"])
  assert hashlib.sha256(image.tobytes()).hexdigest() == spec["pixels_sha256"]


@pytest.fixture(scope="module", params=sorted(PINS["models"]))
def shipped(request):
  folder = request.param
  return folder, checkpoints.load_model(ROOT / folder)


def test_weights_ids_are_the_pinned_and_the_published_ones(shipped):
  folder, model = shipped
  ids = [i.hex() for i in model.weights_ids()]
  assert ids == PINS["models"][folder]["weights_ids"], (
      f"{folder}: weights or coding tables changed; {REGENERATE}")
  assert ids == json.loads((ROOT / RESULTS[folder]).read_text())["weights_ids"]
  manifest = json.loads((ROOT / folder / "manifest.json").read_text())
  assert manifest["weights_id"] == ids[-1]


@pytest.mark.parametrize("name", sorted(PINS["images"]))
def test_streams_and_prefixes_are_the_pinned_ones(shipped, name):
  folder, model = shipped
  spec, want = PINS["images"][name], PINS["models"][folder]["streams"][name]
  image = pins.test_image(spec["height"], spec["width"], spec["seed"])
  stream = codec.encode(model, image, model.num_layers)
  assert bitstream.unpack(stream).version == PINS["stream_version"], (
      f"the stream version changed; {REGENERATE}")
  assert hashlib.sha256(stream).hexdigest() == want["sha256"], (
      f"{folder} codes {name} differently; {REGENERATE}")
  psnr = []
  for k in range(1, model.num_layers + 1):
    # A prefix is cut out of the stream, not coded again.
    cut = bitstream.truncate(stream, k)
    assert len(cut) == want["bytes"][k - 1]
    decoded = codec.decode(model, cut)
    assert decoded.shape == image.shape
    psnr.append(metrics.psnr(image, decoded))
    assert psnr[-1] == pytest.approx(want["psnr-rgb"][k - 1], abs=1e-3)
    assert metrics.ms_ssim(image, decoded) == pytest.approx(
        want["ms-ssim-rgb"][k - 1], abs=1e-5)
  assert psnr == sorted(psnr), "each layer must add quality"


@pytest.mark.full
@pytest.mark.parametrize("weights", sorted(RESULTS))
def test_shipped_weights_reproduce_results_on_kodak(weights):
  kodak = _kodak()
  if kodak is None:
    pytest.skip("needs the 24 Kodak images in ../shared/data/kodak or kodak/ "
                "(python test_el3.py downloads them into kodak/)")
  results = ROOT / RESULTS[weights]
  weights = ROOT / weights
  recorded = json.loads(results.read_text())
  n = len(recorded["layers"])
  # Every shipped layer is evaluated: results of fewer layers do not pass.
  assert n == checkpoints.available_layers(weights)
  model = checkpoints.load_model(weights, n)
  assert recorded["weights_ids"] == [i.hex() for i in model.weights_ids()]
  assert recorded["layers"] == ["base"] + [f"+el{k}" for k in range(1, n)]
  # Coded once with every layer; the prefixes are cut from it, which
  # test_round_trip_at_every_layer_count (test_commands.py) shows to be
  # byte for byte what coding k layers writes.
  evaluate.warm_up(model, n)
  per_image = []
  for path in list_images(kodak, recursive=False):
    image = load_image(path)
    row = results_schema.new_row(pathlib.Path(path).name, image)
    whole = codec.encode(model, image, n)
    for k in range(1, n + 1):
      stream = bitstream.truncate(whole, k)
      results_schema.record(row, image, stream, codec.decode(model, stream),
                            0.0, 0.0)
    per_image.append(row)
  assert [r["image"] for r in per_image] == [r["image"] for r in recorded["per_image"]]
  for new, old in zip(per_image, recorded["per_image"]):
    np.testing.assert_allclose(new["bpp"], old["bpp"], atol=0.001)
    np.testing.assert_allclose(new["psnr-rgb"], old["psnr-rgb"], atol=0.01)
    np.testing.assert_allclose(new["ms-ssim-rgb"], old["ms-ssim-rgb"], atol=1e-4)
  # The means, which the README's table quotes.
  means = results_schema.summarize("", "", recorded["layers"], per_image)["results"]
  for key, atol in (("bpp", 0.001), ("psnr-rgb", 0.01), ("ms-ssim-rgb", 1e-4)):
    np.testing.assert_allclose(means[key], recorded["results"][key], atol=atol)
