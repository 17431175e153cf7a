"""Image-folder loading: unreadable files, the on-disk cache, background prefetching."""
import os
import threading
import time

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from conftest import Config, tiny_dcgan, write_images
from dataset import ImageCache, ImageFolderData, prefetch
from test_main import only_run_folder, run_main_here
from utils import UserError


def make_bad_folder(folder, good=8):
  """good JPEGs, plus a truncated JPEG, a text file named .jpg, an RGBA PNG and a grayscale JPEG."""
  write_images(folder, good, size=(40, 40))
  data = open(os.path.join(folder, "img_000.jpg"), "rb").read()
  open(os.path.join(folder, "zz_truncated.jpg"), "wb").write(data[:len(data) // 2])
  open(os.path.join(folder, "zz_notes.jpg"), "w").write("this is not an image\n")
  write_images(os.path.join(folder, "rgba"), 1, size=(40, 40), mode="RGBA", ext="png")
  os.replace(os.path.join(folder, "rgba", "img_000.png"), os.path.join(folder, "zz_rgba.png"))
  os.rmdir(os.path.join(folder, "rgba"))
  write_images(os.path.join(folder, "gray"), 1, size=(40, 40), mode="L")
  os.replace(os.path.join(folder, "gray", "img_000.jpg"), os.path.join(folder, "zz_gray.jpg"))
  os.rmdir(os.path.join(folder, "gray"))


def test_bad_files_are_skipped_once_and_replaced(tmp_path, capsys):
  make_bad_folder(str(tmp_path / "mixed"))
  data = ImageFolderData(str(tmp_path), "mixed", "*", 32, None, 16, None, crop=True)
  assert len(data) == 12 and data.c_dim == 3
  for _ in range(2):
    images, _ = data.get(np.arange(len(data)))
    assert images.shape == (12, 16, 16, 3) and np.isfinite(images).all()
  out = capsys.readouterr().out
  assert out.count("warning: skipping unreadable image") == 2
  assert "zz_truncated.jpg" in out and "zz_notes.jpg" in out
  assert sorted(os.path.basename(data.files[i]) for i in data.bad) == ["zz_notes.jpg", "zz_truncated.jpg"]
  assert data.report().startswith("2 unreadable file(s) skipped")
  index = data.files.index(os.path.join(str(tmp_path / "mixed"), "zz_notes.jpg"))
  np.testing.assert_array_equal(data.get([index])[0], data.get([index + 1])[0])  # replaced by the next


def test_mixed_folder_trains_through_main(tmp_path, monkeypatch, capsys):
  make_bad_folder(str(tmp_path / "data" / "mixed"))
  _, out, _ = run_main_here(tmp_path, monkeypatch, capsys, "--dataset", "mixed",
                            "--input_fname_pattern", "*", "--input_height", "32", "--crop",
                            "--output_height", "16", "--batch_size", "4", "--epoch", "2",
                            "--train", check=True)
  assert out.count("warning: skipping unreadable image") == 2, out
  assert "2 unreadable file(s) skipped: zz_notes.jpg, zz_truncated.jpg" in out
  assert os.path.exists(os.path.join(only_run_folder(tmp_path), "checkpoint", "model.b4-7.index"))


def test_cache_gives_the_same_images_and_skips_decoding(tmp_path):
  make_bad_folder(str(tmp_path / "faces"), good=6)
  args = (str(tmp_path), "faces", "*", 32, None, 16, None, True)
  plain = ImageFolderData(*args)
  cached = ImageFolderData(*args, cache_dir=str(tmp_path / "cache"))
  order = np.random.RandomState(0).permutation(len(plain))
  expected = plain.get(order)[0]
  np.testing.assert_array_equal(cached.get(order)[0], expected)  # first pass fills the cache
  assert cached.cache.filled() == len(plain) - 2
  # Epochs after the first read only the cache: overwrite every file, the images stay.
  for path in cached.files:
    open(path, "wb").write(b"garbage")
  np.testing.assert_array_equal(cached.get(order)[0], expected)


def test_cache_is_reused_by_a_new_run_and_invalidated_by_changes(tmp_path):
  write_images(str(tmp_path / "faces"), 6, size=(40, 40))
  args = (str(tmp_path), "faces", "*.jpg", 32, None, 16, None, True)
  first = ImageFolderData(*args, cache_dir=str(tmp_path / "cache"))
  first.get(range(6))
  first.cache.flush()
  again = ImageFolderData(*args, cache_dir=str(tmp_path / "cache"))
  assert again.cache.path == first.cache.path and again.cache.filled() == 6
  other_size = ImageFolderData(str(tmp_path), "faces", "*.jpg", 32, None, 8, None, True,
                               cache_dir=str(tmp_path / "cache"))
  assert other_size.cache.path != first.cache.path and other_size.cache.filled() == 0
  assert ImageCache.FILLED == 1


def test_prefetch_keeps_order_and_stays_bounded(tmp_path):
  write_images(str(tmp_path / "faces"), 12, size=(40, 40))
  data = ImageFolderData(str(tmp_path), "faces", "*.jpg", 32, None, 16, None, True)
  batches = [np.random.RandomState(i).permutation(12)[:4] for i in range(10)]
  expected = [data.get(b)[0] for b in batches]

  started = []
  lock = threading.Lock()
  real_get = data.get

  def recording_get(indices):
    with lock:
      started.append(len(started))
    return real_get(indices)

  data.get = recording_get
  stream = prefetch(data, batches, workers=2, depth=3)
  first = next(stream)
  time.sleep(0.3)  # a slow training step: the loader must not run more than depth ahead
  assert len(started) <= 3 + 1
  got = [first[0]] + [images for images, _ in stream]
  assert len(got) == 10
  for a, b in zip(got, expected):
    np.testing.assert_array_equal(a, b)
  assert [images for images, _ in prefetch(data, batches[:2], workers=0)][1].shape == (4, 16, 16, 3)


def test_training_with_cache_and_threads_matches_plain_training(tmp_path, capsys):
  write_images(str(tmp_path / "data" / "faces"), 12, size=(40, 40))
  logs = []
  for name, cache, workers in (("plain", None, 0), ("cached", str(tmp_path / "cache"), 2)):
    data = ImageFolderData(str(tmp_path / "data"), "faces", "*.jpg", 24, None, 16, None, True,
                           cache_dir=cache)
    with tf.Graph().as_default(), tf.Session() as sess:
      model = tiny_dcgan(sess, tmp_path / name, data=data, seed=11)
      model.train(Config(epoch=2, train_size=8, data_workers=workers))
    logs.append([line.split("time:")[1].split(",", 1)[1] for line in capsys.readouterr().out.splitlines()
                 if line.startswith("[")])
  assert logs[0] == logs[1] and len(logs[0]) == 4


def test_unreadable_first_file_and_all_unreadable(tmp_path, capsys):
  folder = tmp_path / "faces"
  write_images(str(folder), 3, size=(30, 30), mode="L")
  (folder / "000_broken.jpg").write_text("not an image")
  data = ImageFolderData(str(tmp_path), "faces", "*.jpg", 24, None, 8, None, True)
  assert data.c_dim == 1 and list(data.bad) == [0]  # channels come from the first readable file
  assert data.get([0])[0].shape == (1, 8, 8, 1)
  (tmp_path / "junk").mkdir()
  for i in range(3):
    (tmp_path / "junk" / ("%d.jpg" % i)).write_text("nope")
  with pytest.raises(UserError, match="None of the 3 files"):
    ImageFolderData(str(tmp_path), "junk", "*.jpg", 24, None, 8, None, True)
