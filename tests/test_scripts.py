"""End to end: the per-layer scripts with the tiny preset on a few images.

The four trained layers are the session's ``tiny_weights`` (conftest: the
same entry point the scripts call, ``cli.train_main``), copied so that
tests may resume or damage them.
"""

import json
import shutil

import pytest

import test_el3
import train_base
import train_el1
import train_el2
import train_el3
import tensorflow as tf

from sae import checkpoints
from sae.train import train_folder
from sae.errors import InputError
from tests.tiny import corpus_and_weights, random_image, write_corpus


TRAINERS = (train_base, train_el1, train_el2, train_el3)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_weights):
  root = tmp_path_factory.mktemp("e2e")
  corpus, ckpt = corpus_and_weights(root, tiny_weights, "ckpt")
  return root, corpus, ckpt


def test_four_layers_trained_and_lower_layers_frozen(trained):
  _, _, ckpt = trained
  assert checkpoints.available_layers(ckpt) == 4
  val = (ckpt / "el3" / "val.csv").read_text().splitlines()
  assert val[0] == "step,loss,bpp,mse,psnr,ms_ssim" and val[-1].startswith("2,")
  for k in range(1, 4):
    state = checkpoints.read_state(ckpt, k)
    assert state["validation"]["step"] == 2 and state["validation"]["bpp"] > 0
    assert 0 < state["validation"]["ms_ssim"] <= 1
    assert state["steps"] == 2 and state["finished"]
    assert state["lower_layer_sha256_before"] == state["lower_layer_sha256_after"]
    assert len(state["lower_layer_sha256_before"]) == k


def test_test_el3_writes_four_layers_with_increasing_rate(trained, tmp_path):
  root, corpus, ckpt = trained
  out = tmp_path / "r.json"
  recon = tmp_path / "recon"
  assert test_el3.main(["--kodak", str(corpus), "--weights", str(ckpt),
                        "--out", str(out), "--limit", "2", "--recon-dir",
                        str(recon), "--no-progress"]) == 0
  result = json.loads(out.read_text())
  bpp = result["results"]["bpp"]
  assert result["layers"] == ["base", "+el1", "+el2", "+el3"]
  assert len(bpp) == 4 and all(a < b for a, b in zip(bpp, bpp[1:]))
  assert len(result["per_image"]) == 2
  for key in ("psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time"):
    assert len(result["results"][key]) == 4
  assert len(list(recon.glob("*.png"))) == 8


def test_resume_continues_from_checkpoint(trained):
  _, corpus, ckpt = trained
  first = checkpoints.read_state(ckpt, 3)["schedule"]["decay_at_step"]
  argv = ["--preset", "tiny", "--corpus", str(corpus), "--checkpoint-dir",
          str(ckpt), "--steps", "4", "--no-progress"]
  assert train_el3.main(argv) == 0
  state = checkpoints.read_state(ckpt, 3)
  assert state["steps"] == 4
  # The decay step of the first run (0.8 * 2 steps) survives the extension.
  assert state["schedule"]["decay_at_step"] == first == 1


def _refusal(capsys, trainer, argv):
  code = trainer.main(argv + ["--preset", "tiny", "--steps", "9", "--no-progress"])
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 2 and len(err) == 1 and err[0].startswith("error: ")
  return err[0]


def test_resume_with_another_lambda_is_refused(trained, capsys):
  _, corpus, ckpt = trained
  err = _refusal(capsys, train_el3, ["--corpus", str(corpus), "--checkpoint-dir",
                                     str(ckpt), "--lambda", "0.5"])
  assert "--lambda" in err


def test_retraining_below_a_trained_layer_is_refused(trained, capsys):
  _, corpus, ckpt = trained
  before = checkpoints.read_state(ckpt, 0)
  err = _refusal(capsys, train_base, ["--corpus", str(corpus),
                                      "--checkpoint-dir", str(ckpt)])
  assert "stale" in err and checkpoints.read_state(ckpt, 0) == before


def test_weights_without_training_state_are_not_overwritten(trained, capsys, tmp_path):
  _, corpus, ckpt = trained
  shipped = tmp_path / "shipped"
  checkpoints.ship_weights(ckpt, shipped, 2)
  index = (shipped / "el1" / "weights.index").read_bytes()
  err = _refusal(capsys, train_el1, ["--corpus", str(corpus),
                                     "--checkpoint-dir", str(shipped)])
  assert "no training state" in err
  assert (shipped / "el1" / "weights.index").read_bytes() == index


@pytest.mark.full  # two training runs through the script
def test_from_weights_continues_a_layer_without_training_state(
    trained, tmp_path):
  _, corpus, ckpt = trained
  shipped = tmp_path / "copy"
  checkpoints.copy_layers(ckpt, shipped, 4)  # weights and state.json only
  assert not (shipped / "el3" / "train").exists()
  before = checkpoints.read_state(shipped, 3)
  n = before["steps"]  # 2, or 4 after test_resume_continues_from_checkpoint
  digest = _layer_digest(shipped, 3)
  argv = ["--preset", "tiny", "--corpus", str(corpus), "--checkpoint-dir",
          str(shipped), "--no-progress"]
  assert train_el3.main(argv + ["--steps", str(n + 2), "--from-weights"]) == 0
  state = checkpoints.read_state(shipped, 3)
  assert state["steps"] == n + 2 and state["adam_restarted_at_steps"] == [n]
  assert state["schedule"] == before["schedule"]  # the first run's decay step
  assert state["lower_layer_sha256_after"] == before["lower_layer_sha256_after"]
  assert _layer_digest(shipped, 3) != digest  # trained on from its weights
  # Its new training state keeps the offset for the next resume.
  latest = tf.train.latest_checkpoint(str(shipped / "el3" / "train"))
  assert train_folder.saved_step_offset(latest) == n
  assert train_el3.main(argv + ["--steps", str(n + 3)]) == 0
  state = checkpoints.read_state(shipped, 3)
  assert state["steps"] == n + 3 and state["adam_restarted_at_steps"] == [n]


@pytest.mark.full  # two training runs through the script
def test_stop_at_ends_short_of_steps_on_their_schedule(trained, tmp_path):
  _, corpus, ckpt = trained
  folder = tmp_path / "ckpt"
  checkpoints.ship_weights(ckpt, folder, 3)  # el3 trains anew
  argv = ["--preset", "tiny", "--corpus", str(corpus), "--checkpoint-dir",
          str(folder), "--no-progress", "--steps", "10"]
  assert train_el3.main(argv + ["--stop-at", "2"]) == 0
  state = checkpoints.read_state(folder, 3)
  assert state["steps"] == 2 and not state["finished"]
  assert state["schedule"]["decay_at_step"] == 8  # 0.8 of --steps
  assert (folder / "el3" / "val.csv").read_text().splitlines()[-1].startswith("2,")


def test_from_weights_needs_weights_and_refuses_shipped_folders(
    trained, capsys, tmp_path):
  _, corpus, ckpt = trained
  partial = tmp_path / "partial"
  checkpoints.copy_layers(ckpt, partial, 3)
  err = _refusal(capsys, train_el3, ["--corpus", str(corpus), "--checkpoint-dir",
                                     str(partial), "--from-weights"])
  assert "--from-weights" in err and "no weights" in err
  shipped = tmp_path / "shipped"
  checkpoints.ship_weights(ckpt, shipped, 4)
  err = _refusal(capsys, train_el3, ["--corpus", str(corpus), "--checkpoint-dir",
                                     str(shipped), "--from-weights"])
  assert "shipped" in err and "fork_weights" in err


def _layer_digest(root, k):
  return (checkpoints.layer_dir(root, k) / "weights.data-00000-of-00001"
          ).read_bytes()


def test_patch_size_must_be_a_multiple_of_16(tmp_path, capsys):
  corpus = write_corpus(tmp_path / "c", [(64, 64)])
  err = _refusal(capsys, train_base, ["--corpus", str(corpus), "--checkpoint-dir",
                                      str(tmp_path / "ck"), "--patch-size", "40"])
  assert "multiple of 16" in err


def test_a_corpus_without_images_is_refused_before_the_folder_is_made(
    tmp_path, capsys):
  (tmp_path / "empty").mkdir()
  ckpt = tmp_path / "ck"
  err = _refusal(capsys, train_base, ["--corpus", str(tmp_path / "empty"),
                                      "--checkpoint-dir", str(ckpt)])
  assert "no PNG/JPEG images" in err
  assert not ckpt.exists()


def test_missing_lower_layer_is_named(tmp_path, capsys):
  corpus = write_corpus(tmp_path / "c", [(64, 64)])
  code = train_el2.main(["--preset", "tiny", "--corpus", str(corpus),
                         "--checkpoint-dir", str(tmp_path / "ck"),
                         "--steps", "1", "--no-progress"])
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 2 and len(err) == 1
  assert err[0].startswith("error: layer 0 (base)") and "train_base.py" in err[0]


def test_other_architecture_is_refused(trained, capsys):
  _, corpus, ckpt = trained
  code = train_el1.main(["--preset", "paper", "--corpus", str(corpus),
                         "--checkpoint-dir", str(ckpt), "--steps", "1",
                         "--no-progress"])
  assert code == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("error: base in ")
  assert "has 8 latent channels; preset 'paper' has 48 there" in err[0]


def test_other_family_is_refused(trained, capsys):
  _, corpus, ckpt = trained
  code = train_el1.main(["--preset", "tiny", "--family", "sae-nested",
                         "--corpus", str(corpus), "--checkpoint-dir", str(ckpt),
                         "--steps", "1", "--no-progress"])
  assert code == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert err == [f"error: {ckpt} holds the sae family, not sae-nested (use "
                 "another --checkpoint-dir)"]


def test_bad_arguments_exit_2(capsys):
  with pytest.raises(SystemExit) as e:
    train_base.main(["--steps", "-3"])
  assert e.value.code == 2
  assert capsys.readouterr().err.startswith("error: ")


def test_missing_weights_folder(tmp_path, capsys):
  corpus = write_corpus(tmp_path / "c", [(32, 32)])
  assert test_el3.main(["--kodak", str(corpus), "--weights",
                        str(tmp_path / "none"), "--no-progress"]) == 2
  assert "not a weights folder" in capsys.readouterr().err


def test_missing_output_folder_is_refused_before_evaluating(tmp_path, capsys):
  out = tmp_path / "no" / "such" / "results.json"
  # The weights folder does not exist either: the output is checked first.
  assert test_el3.main(["--kodak", str(tmp_path), "--weights",
                        str(tmp_path / "none"), "--out", str(out),
                        "--no-progress"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "output directory" in err[0]


def test_damaged_training_record_is_a_one_line_error(tmp_path, capsys):
  corpus = write_corpus(tmp_path / "c", [(64, 64)])
  state = tmp_path / "ck" / "base" / "state.json"
  state.parent.mkdir(parents=True)
  state.write_text('{"steps": 12, "fini')
  code = train_base.main(["--preset", "tiny", "--corpus", str(corpus),
                          "--checkpoint-dir", str(tmp_path / "ck"),
                          "--steps", "1", "--no-progress"])
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 2 and len(err) == 1
  assert err[0].startswith("error: ") and "state.json is damaged" in err[0]
  assert state.read_text() == '{"steps": 12, "fini'  # left for the user


@pytest.mark.full  # tens of seconds of training and tracing
def test_shipped_weights_carry_tables_and_decode_the_same(trained, tmp_path):
  import numpy as np
  from sae import codec
  _, _, ckpt = trained
  shipped = tmp_path / "w"
  manifest = checkpoints.ship_weights(ckpt, shipped)
  assert all(checkpoints.tables_path(shipped, k).is_file() for k in range(4))
  a, b = checkpoints.load_model(ckpt), checkpoints.load_model(shipped)
  assert manifest["weights_id"] == a.weights_ids()[-1].hex() == b.weights_ids()[-1].hex()
  # The manifest lets a reader check the freeze: what each layer froze is the
  # layer below as shipped.
  layers = manifest["layers"]
  for k in range(1, 4):
    assert layers[k]["lower_layer_sha256_after"] == [
        e["weights_sha256"] for e in layers[:k]]
  assert manifest["status"] == "complete"
  partial = checkpoints.ship_weights(ckpt, tmp_path / "w2", 2)
  assert partial["status"] == "interim: el2, el3 not shipped yet"
  # Shipping again from a checkpoint whose el1 tables are damaged fails with
  # one error and leaves the weights shipped before as they were.
  damaged = shutil.copytree(ckpt, tmp_path / "damaged")
  checkpoints.tables_path(damaged, 1).write_bytes(b"PK\x03\x04 cut short")
  before = {p: p.read_bytes() for p in shipped.rglob("*") if p.is_file()}
  with pytest.raises(InputError, match="tables.npz is damaged"):
    checkpoints.ship_weights(damaged, shipped)
  assert {p: p.read_bytes() for p in shipped.rglob("*") if p.is_file()} == before
  assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged", "w", "w2"]
  # By default only finished layers ship: el2 still training stays behind
  # unless it is named.
  training = shutil.copytree(ckpt, tmp_path / "training")
  state = checkpoints.read_state(training, 2)
  checkpoints.write_state(training, 2, dict(state, finished=False))
  assert len(checkpoints.ship_weights(training, tmp_path / "w3")["layers"]) == 2
  named = checkpoints.ship_weights(training, tmp_path / "w3", 3)
  assert named["status"] == "interim: el2 still training; el3 not shipped yet"
  image = random_image(40, 24)
  stream = codec.encode(a, image, 4)
  assert codec.encode(b, image, 4) == stream
  np.testing.assert_array_equal(codec.decode(b, stream), codec.decode(a, stream))


def test_sigterm_saves_a_checkpoint(tmp_path):
  import os
  import pathlib
  import signal
  import subprocess
  import sys
  import time
  root = pathlib.Path(__file__).resolve().parents[1]
  corpus = write_corpus(tmp_path / "c", [(64, 64)])
  ckpt = tmp_path / "ck"
  proc = subprocess.Popen(
      [sys.executable, str(root / "train_base.py"), "--preset", "tiny",
       "--corpus", str(corpus), "--checkpoint-dir", str(ckpt), "--steps",
       "100000", "--checkpoint-every", "100000"],
      stderr=subprocess.PIPE, text=True, cwd=root,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  deadline = time.monotonic() + 300
  while not (ckpt / "base" / "log.csv").exists() or len(
      (ckpt / "base" / "log.csv").read_text().splitlines()) < 2:
    assert proc.poll() is None and time.monotonic() < deadline
    time.sleep(0.5)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 2 and err.rstrip().endswith("error: interrupted")
  assert checkpoints.read_state(ckpt, 0)["steps"] >= 100
  assert checkpoints.has_weights(ckpt, 0)


@pytest.mark.full  # tens of seconds of training and tracing
def test_ms_ssim_model_trains_and_works_with_every_weights_consumer(tmp_path):
  import test_el1
  from sae import config
  from tests.cli_helpers import cli, write_png
  corpus = write_corpus(tmp_path / "corpus", [(64, 64), (80, 96)])
  ckpt = tmp_path / "ckpt"
  for trainer in TRAINERS[:2]:
    assert trainer.main(["--preset", "tiny", "--metric", "ms-ssim", "--corpus",
                         str(corpus), "--checkpoint-dir", str(ckpt), "--steps",
                         "2", "--no-progress", "--seed", "1"]) == 0
  recorded = checkpoints.read_config(ckpt)
  assert recorded.metric == "ms-ssim"
  assert [s.lmbda for s in recorded.layers] == [
      s.lmbda for s in config.get_preset("tiny", "ms-ssim").layers[:2]]
  assert checkpoints.read_state(ckpt, 1)["metric"] == "ms-ssim"
  shipped = tmp_path / "weights" / "ms-ssim"
  manifest = checkpoints.ship_weights(ckpt, shipped)
  assert manifest["metric"] == "ms-ssim"
  # Training an MSE layer on top of MS-SSIM layers is refused.
  assert train_el2.main(["--preset", "tiny", "--corpus", str(corpus),
                         "--checkpoint-dir", str(ckpt), "--steps", "2",
                         "--no-progress"]) == 2
  # Each consumer once, the training folder and the shipped one in turn
  # (both describe themselves in config.json).
  out = tmp_path / "r.json"
  assert test_el1.main(["--kodak", str(corpus), "--weights", str(ckpt),
                        "--out", str(out), "--no-progress"]) == 0
  result = json.loads(out.read_text())
  assert result["metric"] == "ms-ssim" and len(result["results"]["bpp"]) == 2
  image = write_png(tmp_path / "in.png", random_image(40, 56))
  assert cli("compress", image, tmp_path / "s.sae", "--weights", shipped)[0] == 0
  assert cli("decompress", tmp_path / "s.sae", tmp_path / "o.png",
             "--weights", shipped, "--layers", 1)[0] == 0
  assert cli("export", tmp_path / "saved", "--weights", shipped)[0] == 0


@pytest.mark.full  # tens of seconds of training and tracing
def test_train_all_trains_the_unfinished_layers_then_skips_them(
    tmp_path, tiny_weights):
  import os
  import pathlib
  import subprocess
  root = pathlib.Path(__file__).resolve().parents[1]
  corpus = write_corpus(tmp_path / "c", [(64, 64), (72, 80)])
  # base and el1 finished (as after an interrupted run); el2, el3 to train.
  ckpt = tmp_path / "ck"
  shutil.copytree(tiny_weights, ckpt)
  for layer in ("el2", "el3"):
    shutil.rmtree(ckpt / layer)
  env = dict(os.environ, STEPS_BASE="2", STEPS_EL="2", TF_CPP_MIN_LOG_LEVEL="3")
  argv = ["bash", str(root / "tools" / "train_all.sh"), str(ckpt), str(corpus),
          "--preset", "tiny", "--no-progress"]
  done = subprocess.run(argv, env=env, capture_output=True, text=True,
                        timeout=600)
  assert done.returncode == 0, done.stderr
  assert done.stdout.count("finished, skipped") == 2
  assert [line.split(":")[0] for line in done.stdout.splitlines()
          if "training to" in line] == ["el2", "el3"]
  assert checkpoints.available_layers(ckpt) == 4
  assert all(checkpoints.read_state(ckpt, k)["finished"] for k in range(4))
  done = subprocess.run(argv, env=env, capture_output=True, text=True,
                        timeout=600)
  assert done.returncode == 0
  assert done.stdout.count("finished, skipped") == 4


def test_train_all_passes_sigterm_to_the_trainer(tmp_path):
  import os
  import pathlib
  import signal
  import subprocess
  import time
  root = pathlib.Path(__file__).resolve().parents[1]
  corpus = write_corpus(tmp_path / "c", [(64, 64)])
  ckpt = tmp_path / "ck"
  proc = subprocess.Popen(
      ["bash", str(root / "tools" / "train_all.sh"), str(ckpt), str(corpus),
       "--preset", "tiny", "--no-progress", "--checkpoint-every", "100000"],
      env=dict(os.environ, STEPS_BASE="100000", TF_CPP_MIN_LOG_LEVEL="3"),
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  log = ckpt / "base" / "log.csv"
  deadline = time.monotonic() + 300
  while not log.exists() or len(log.read_text().splitlines()) < 2:
    assert proc.poll() is None and time.monotonic() < deadline
    time.sleep(0.5)
  proc.send_signal(signal.SIGTERM)
  time.sleep(0.2)  # a second stop, as a scheduler may send, while it saves
  if proc.poll() is None:
    proc.send_signal(signal.SIGTERM)
  _, stderr = proc.communicate(timeout=120)
  assert proc.returncode == 143, stderr
  # The trainer saved and left: nothing keeps writing the checkpoint folder.
  assert checkpoints.read_state(ckpt, 0).get("steps", 0) >= 100, stderr
  done = subprocess.run(["pgrep", "-f", str(ckpt)], capture_output=True)
  assert done.returncode == 1, done.stdout


@pytest.mark.full  # training and tracing a layer
def test_a_wider_layer_trains_and_every_consumer_builds_it(tmp_path,
                                                           tiny_weights):
  import test_el1
  corpus = write_corpus(tmp_path / "c", [(64, 64), (72, 80)])
  ckpt = tmp_path / "ck"
  checkpoints.copy_layers(tiny_weights, ckpt, 1)
  assert train_el1.main(["--corpus", str(corpus), "--checkpoint-dir",
                         str(ckpt), "--preset", "tiny", "--steps", "2",
                         "--conv-filters", "12", "--no-progress"]) == 0
  assert [s.conv_filters for s in checkpoints.read_config(ckpt).layers] == [8, 12]
  model = checkpoints.load_model(ckpt)
  assert model.codecs[1].analysis.weights[0].shape[-1] == 12
  out = tmp_path / "r.json"
  assert test_el1.main(["--kodak", str(corpus), "--weights", str(ckpt),
                        "--out", str(out), "--no-progress"]) == 0
  bpp = json.loads(out.read_text())["results"]["bpp"]
  assert len(bpp) == 2 and 0 < bpp[0] < bpp[1]


@pytest.mark.parametrize("args, message", [
    ([], "error: usage: tools/publish_model.sh"),
    (["bogus"], "error: usage: tools/publish_model.sh"),
    (["sae-nested", "--from"], "error: --from needs a folder"),
    (["sae-nested", "--from", "nowhere"],
     "error: nowhere is not a checkpoint folder (no such folder)"),
    (["sae-nested", "--from", "."],  # the folder the command runs in
     "error: . is not a checkpoint folder (no config.json)"),
])
def test_publish_model_refuses_bad_arguments_before_writing(tmp_path, args,
                                                             message):
  import pathlib
  import subprocess
  root = pathlib.Path(__file__).resolve().parents[1]
  before = sorted(p.name for p in (root / "weights").iterdir())
  done = subprocess.run(["bash", str(root / "tools" / "publish_model.sh"),
                         *args], cwd=tmp_path, capture_output=True, text=True,
                        timeout=60)
  assert done.returncode == 2
  assert done.stderr.startswith(message)
  assert len(done.stderr.strip().splitlines()) == 1
  assert sorted(p.name for p in (root / "weights").iterdir()) == before
