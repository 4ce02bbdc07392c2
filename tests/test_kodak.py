import pytest

from sae.eval import kodak
from sae.errors import InputError
from tests.tiny import write_corpus


@pytest.fixture
def source(tmp_path):
  """A local stand-in for the Kodak server (file:// URLs)."""
  folder = write_corpus(tmp_path / "server", [(8, 8)] * kodak.NUM_IMAGES)
  for i in range(kodak.NUM_IMAGES):
    (folder / f"img{i}.png").rename(folder / f"kodim{i + 1:02d}.png")
  return folder.as_uri() + "/kodim{:02d}.png"


def test_empty_folder_gets_all_24(tmp_path, source):
  paths = kodak.ensure_images(tmp_path / "k", source, progress=False)
  assert [p[-11:] for p in paths] == [f"kodim{i:02d}.png" for i in range(1, 25)]


def test_cut_download_is_completed_only_for_the_default_folder(tmp_path, source):
  folder = tmp_path / "k"
  kodak.ensure_images(folder, source, progress=False)
  for p in list(folder.glob("kodim1*.png")):
    p.unlink()
  assert len(kodak.ensure_images(folder, source, progress=False)) == 14
  assert len(kodak.ensure_images(folder, source, progress=False, complete=True)) == 24


def test_own_images_and_subfolders(tmp_path, source):
  folder = write_corpus(tmp_path / "mine", [(8, 8), (8, 8)])
  write_corpus(folder / "recon", [(8, 8)])
  paths = kodak.ensure_images(folder, source, progress=False, complete=True)
  assert [p[-8:] for p in paths] == ["img0.png", "img1.png"]


def test_offline_is_one_clear_error(tmp_path):
  with pytest.raises(InputError, match="--kodak DIR"):
    kodak.ensure_images(tmp_path / "k", (tmp_path / "nowhere").as_uri() + "/{:02d}.png",
                        progress=False)


def test_a_folder_of_jpegs_is_read_not_downloaded_into(tmp_path, source):
  from PIL import Image
  folder = tmp_path / "jpegs"
  folder.mkdir()
  Image.new("RGB", (8, 8)).save(folder / "photo.jpg")
  paths = kodak.ensure_images(folder, source, progress=False)
  assert [p[-9:] for p in paths] == ["photo.jpg"]
  assert sorted(p.name for p in folder.iterdir()) == ["photo.jpg"]


def test_a_download_that_is_not_a_png_is_refused_and_not_kept(tmp_path):
  server = tmp_path / "server"
  server.mkdir()
  for i in range(1, kodak.NUM_IMAGES + 1):  # a captive portal's answer
    (server / f"{i:02d}.png").write_text("<html>log in first</html>")
  folder = tmp_path / "k"
  with pytest.raises(InputError, match="did not return a PNG"):
    kodak.ensure_images(folder, server.as_uri() + "/{:02d}.png", progress=False)
  assert list(folder.iterdir()) == []
