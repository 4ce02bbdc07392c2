import pytest

from sae import kodak
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
