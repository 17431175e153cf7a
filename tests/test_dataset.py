"""The data layer: IDX files read by their headers, the bundled MNIST sample, image folders."""
import gzip
import os
import re
import shutil
import struct

import numpy as np
import pytest
from PIL import Image

from conftest import write_images
from dataset import (BUNDLED_MNIST_DIR, ImageFolderData, MnistData, described, open_dataset,
                     prefetch, read_idx)
from utils import UserError

# main.py's defaults for an image folder: "*.jpg", 108 high, width as high, 64 out, no crop
FLAG_SIZES = ("*.jpg", 108, None, 64, None, False)


def test_bundled_mnist_is_the_real_sample():
  data = MnistData("/nonexistent")
  assert data.source == BUNDLED_MNIST_DIR
  assert len(data) == 5000  # counts from the IDX headers: 4,000 train + 1,000 test
  images, labels = data.get(np.arange(len(data)))
  assert images.shape == (5000, 28, 28, 1) and images.dtype == np.float32
  assert images.min() == 0.0 and images.max() == 1.0
  assert labels.shape == (5000, 10) and (labels.sum(1) == 1).all()
  assert (labels.sum(0) == 500).all()  # 500 digits per class
  # shuffled with the original's seed, not left in file order
  train_labels = read_idx(os.path.join(BUNDLED_MNIST_DIR, "train-labels-idx1-ubyte.gz"), 1)
  assert not np.array_equal(labels[:4000].argmax(1), train_labels)


def idx_bytes(array):
  return struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape) \
      + array.astype(np.uint8).tobytes()


def test_read_idx_raw_and_gz_agree(tmp_path):
  gz = os.path.join(BUNDLED_MNIST_DIR, "t10k-images-idx3-ubyte.gz")
  raw = str(tmp_path / "t10k-images-idx3-ubyte")
  with gzip.open(gz) as src, open(raw, "wb") as dst:
    shutil.copyfileobj(src, dst)
  a, b = read_idx(gz, 3), read_idx(raw, 3)
  assert a.shape == (1000, 28, 28)
  np.testing.assert_array_equal(a, b)


def test_full_mnist_in_data_dir_is_preferred(tmp_path):
  folder = tmp_path / "mnist"
  folder.mkdir()
  rng = np.random.RandomState(0)
  for name, array in (("train-images-idx3-ubyte", rng.randint(0, 256, (20, 28, 28))),
                      ("train-labels-idx1-ubyte", np.arange(20) % 10),
                      ("t10k-images-idx3-ubyte", rng.randint(0, 256, (6, 28, 28))),
                      ("t10k-labels-idx1-ubyte", np.arange(6) % 10)):
    (folder / name).write_bytes(idx_bytes(array))
  data = open_dataset("mnist", str(tmp_path), "*", 28, None, 28, 28, False)
  assert len(data) == 26 and data.source == str(folder)
  images, labels = data.get(np.arange(4))
  assert images.shape == (4, 28, 28, 1) and labels.shape == (4, 10)


def test_wrong_magic_and_truncation_are_clear_errors(tmp_path):
  bad = tmp_path / "bad"
  bad.write_bytes(idx_bytes(np.zeros((3, 4))))  # a 2-D file where 3-D images are expected
  with pytest.raises(UserError, match="magic number 0x00000802, expected 0x00000803"):
    read_idx(str(bad), 3)
  short = tmp_path / "short"
  short.write_bytes(idx_bytes(np.zeros((3, 4, 4)))[:-5])
  with pytest.raises(UserError, match="truncated"):
    read_idx(str(short), 3)
  text = tmp_path / "text"
  text.write_bytes(b"hello world, not an IDX file")
  with pytest.raises(UserError, match="not an IDX file"):
    read_idx(str(text), 1)


def test_image_folder(tmp_path):
  write_images(str(tmp_path / "faces"), 5, size=(40, 50))
  data = open_dataset("faces", str(tmp_path), "*.jpg", 30, None, 16, None, crop=True)
  assert isinstance(data, ImageFolderData) and len(data) == 5 and data.c_dim == 3
  assert data.y_dim is None and data.value_range == (-1.0, 1.0)
  images, labels = data.get([4, 0])
  assert images.shape == (2, 16, 16, 3) and labels is None

  write_images(str(tmp_path / "gray"), 3, size=(20, 20), mode="L", ext="png")
  gray = open_dataset("gray", str(tmp_path), "*.png", 20, None, 8, 12, crop=False)
  assert gray.c_dim == 1 and gray.get([0, 1, 2])[0].shape == (3, 8, 12, 1)


def test_missing_or_empty_folders_are_clear_errors(tmp_path):
  with pytest.raises(UserError, match="does not exist"):
    open_dataset("celebA", str(tmp_path), *FLAG_SIZES)
  (tmp_path / "celebA").mkdir()
  with pytest.raises(UserError, match="No files match"):
    open_dataset("celebA", str(tmp_path), *FLAG_SIZES)


def test_images_in_subfolders_are_named_where_the_pattern_does_not_reach(tmp_path, capsys):
  """Class folders (<folder>/<class>/<image>) read as a flat image folder: the error names
  the subfolders and the pattern that reads them, never suggests the pattern just given; that
  pattern reads them as one unlabelled set, said in one line."""
  for name in ("cats", "dogs"):
    write_images(str(tmp_path / "pets" / name), 2, size=(20, 20), ext="png")
  with pytest.raises(UserError) as err:
    open_dataset("pets", str(tmp_path), "*.png", 20, None, 8, None, crop=False)
  assert str(err.value) == (
      "No files match %s/pets/*.png; its images are in 2 subfolders (cats, dogs), which "
      "--input_fname_pattern '*.png' does not reach: move them into %s/pets, or read them with "
      "--input_fname_pattern '*/*.png'." % (tmp_path, tmp_path))
  with pytest.raises(UserError) as err:
    open_dataset("pets", str(tmp_path), "*.jpg", 20, None, 8, None, crop=False)
  assert "check --input_fname_pattern (for example '*.png')" in str(err.value)
  (tmp_path / "flat").mkdir()
  with pytest.raises(UserError) as err:
    open_dataset("flat", str(tmp_path), "*.png", 20, None, 8, None, crop=False)
  assert "check --input_fname_pattern (for example '*.jpg')" in str(err.value)
  capsys.readouterr()
  data = open_dataset("pets", str(tmp_path), "*/*.png", 20, None, 8, None, crop=False)
  assert len(data) == 4 and data.y_dim is None
  assert (" [!] --input_fname_pattern '*/*.png' reads the images of 2 subfolders (cats, dogs) as "
          "one unlabelled set") in capsys.readouterr().out


def test_a_dataset_named_alone_is_described_without_its_files():
  """(test mode on a run recorded before runs recorded their data's description)"""
  assert described("mnist")["labels"] == [str(digit) for digit in range(10)]
  assert described("mnist")["channels"] == 1 and described("mnist")["kind"] == "mnist"
  assert described("celebA")["labels"] is None and described("celebA")["channels"] is None


def mixed_folder(folder, first_gray):
  """5 colour JPEGs and 1 grayscale one, sorting first (a.jpg) or last (zz.jpg)."""
  write_images(folder, 5, size=(40, 40))
  write_images(folder + "_gray", 1, size=(40, 40), mode="L")
  os.replace(os.path.join(folder + "_gray", "img_000.jpg"),
             os.path.join(folder, "a.jpg" if first_gray else "zz.jpg"))
  os.rmdir(folder + "_gray")


@pytest.mark.parametrize("first_gray", [True, False])
def test_mixed_channels_are_said_and_counted(tmp_path, capsys, first_gray):
  mixed_folder(str(tmp_path / "mixed"), first_gray)
  data = ImageFolderData(str(tmp_path), "mixed", "*.jpg", 32, None, 16, None, crop=True)
  assert data.c_dim == (1 if first_gray else 3)
  assert os.path.basename(data.channels_file) == ("a.jpg" if first_gray else "img_000.jpg")
  opened = capsys.readouterr().out
  if first_gray:  # where it matters: a colour folder is about to train in grey
    assert opened == (" [*] Images read as grayscale (1 channel), as the first file, a.jpg, is; "
                      "any colour image among them is turned grey\n")
  assert data.report() is None  # nothing decoded yet: no file opened up front
  for _ in range(2):  # two epochs, decoded in worker threads: each image counted once
    for _ in prefetch(data, [[0, 1, 2], [3, 4, 5]], workers=2):
      pass
  said = capsys.readouterr().out
  assert said.count(" [!] ") == 1  # the first image of the other kind, once
  if first_gray:
    assert re.match(r" \[!\] img_00\d\.jpg is colour, but the images are read as grayscale, as "
                    r"the first file, a\.jpg, is; it and every other colour image are turned grey "
                    r"\(counted at the end of training\)\n$", said)  # whichever thread came first
    decided = "(the first file, a.jpg, decided: grayscale)"
  else:
    assert (" [!] zz.jpg is grayscale, but the images are read as colour, as the first file, "
            "img_000.jpg, is; it and every other grayscale image are turned to colour") in said
    decided = "(the first file, img_000.jpg, decided: colour)"
  assert data.channel_counts() == {3: 5, 1: 1}
  assert data.report() == "images by channels: 5 colour, 1 grayscale " + decided


def test_channels_decided_after_an_unreadable_first_file(tmp_path, capsys):
  mixed_folder(str(tmp_path / "mixed"), first_gray=True)
  (tmp_path / "mixed" / "0_notes.jpg").write_text("not an image")
  data = ImageFolderData(str(tmp_path), "mixed", "*.jpg", 32, None, 16, None, crop=True)
  assert data.c_dim == 1
  assert "as the first readable file, a.jpg, is;" in capsys.readouterr().out
  data.get([0, 1, 2])  # 0_notes.jpg is replaced by a.jpg
  assert data.report() == ("1 unreadable file(s) skipped: 0_notes.jpg; images by channels, of the 2 "
                           "decoded: 1 colour, 1 grayscale (the first readable file, a.jpg, "
                           "decided: grayscale)")


def test_images_smaller_than_the_crop_are_counted(tmp_path):
  folder = str(tmp_path / "faces")
  write_images(folder, 3, size=(40, 40))
  write_images(folder + "_small", 2, size=(20, 40), seed=1)  # narrower than the 32x32 crop
  for name in os.listdir(folder + "_small"):
    os.replace(os.path.join(folder + "_small", name), os.path.join(folder, "small_" + name))
  args = (str(tmp_path), "faces", "*.jpg", 32, None, 16, None)
  data = ImageFolderData(*args, crop=True)
  data.get(np.arange(len(data)))
  data.get(np.arange(len(data)))  # a second epoch counts nothing twice
  assert data.stretched() == 2
  assert data.report() == "2 images smaller than the 32x32 crop were stretched to it"
  uncropped = ImageFolderData(*args, crop=False)  # resized whole: nothing stretched to a crop
  uncropped.get(np.arange(len(uncropped)))
  assert uncropped.report() is None

  cache = str(tmp_path / "cache")
  ImageFolderData(*args, crop=True, cache_dir=cache).get([3])
  cached = ImageFolderData(*args, crop=True, cache_dir=cache)
  cached.get([3, 4])  # 3 from the cache, decoded by the first: still counted
  assert cached.report() == "2 images smaller than the 32x32 crop were stretched to it"
  tall = ImageFolderData(str(tmp_path), "faces", "*.jpg", 42, 30, 16, None, crop=True)
  tall.get([0])
  assert tall.report() == "1 image smaller than the 42x30 crop (height x width) was stretched to it"


def test_missing_celeba_or_lsun_folder_suggests_download_py(tmp_path, monkeypatch):
  data_dir = str(tmp_path / "my data")
  with pytest.raises(UserError) as err:
    open_dataset("celebA", data_dir, *FLAG_SIZES)
  assert str(err.value) == (
      "The dataset folder %s/celebA does not exist; put images there or set --data_dir and "
      "--dataset, or download CelebA with 'python download.py celebA --data_dir '%s''."
      % (data_dir, data_dir))
  with pytest.raises(UserError, match="does not exist; .*, or download LSUN's bedroom scenes with "
                     "'python download.py lsun --data_dir .*' \\(--lsun_category picks another "
                     "scene\\)\\.$"):
    open_dataset("lsun", data_dir, *FLAG_SIZES)
  with pytest.raises(UserError) as err:
    open_dataset("faces", data_dir, *FLAG_SIZES)  # not a dataset download.py makes: as before
  assert "download.py" not in str(err.value) and str(err.value).endswith("--dataset.")

  monkeypatch.chdir(str(tmp_path))  # the default --data_dir: the command needs none
  (tmp_path / "data" / "celebA").mkdir(parents=True)
  with pytest.raises(UserError) as err:
    open_dataset("celebA", "./data", *FLAG_SIZES)
  assert str(err.value) == (
      "No files match ./data/celebA/*.jpg; check --input_fname_pattern (for example '*.png'), or "
      "download CelebA with 'python download.py celebA'.")
  (tmp_path / "data" / "celebA" / "face.png").write_bytes(b"")
  with pytest.raises(UserError) as err:  # not empty: the pattern, not a download, is at fault
    open_dataset("celebA", "./data", *FLAG_SIZES)
  assert "download.py" not in str(err.value) and "face.png" in str(err.value)


def write_classes(folder, classes, count=4, size=(20, 20)):
  """Class folders of RGB images, each class its own colour (red, green, blue, ...)."""
  rng = np.random.RandomState(0)
  for label, name in enumerate(classes):
    os.makedirs(os.path.join(folder, name), exist_ok=True)
    colour = np.roll([220, 30, 30], label)
    for i in range(count):
      pixels = np.clip(colour + rng.normal(0, 10, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
      Image.fromarray(pixels).save(os.path.join(folder, name, "%s_%d.png" % (name, i)))
  return folder


def test_class_folders_are_labelled_by_their_folder(tmp_path):
  write_classes(str(tmp_path / "pets"), ["dog", "cat", "fox"], count=3)
  (tmp_path / "pets" / "fox" / "fox_9.png").write_bytes(b"not an image")  # sorts last
  data = open_dataset("pets", str(tmp_path), "*.png", 20, None, 8, None, crop=False, labels=True)
  assert data.label_names == ["cat", "dog", "fox"] and data.y_dim == 3 and len(data) == 10
  assert data.description == {"kind": "classes", "source": str(tmp_path / "pets"), "digest": None,
                              "labels": ["cat", "dog", "fox"], "channels": 3}
  images, labels = data.get([0, 3, 6, 9])
  assert images.shape == (4, 8, 8, 3) and 0.0 <= images.min() and images.max() <= 1.0
  # the unreadable fox_9 is replaced by the next readable image (cat_0), and its label with it
  np.testing.assert_array_equal(labels.argmax(1), [0, 1, 2, 0])
  assert labels.sum() == 4
  np.testing.assert_array_equal(images.mean((1, 2)).argmax(1), [1, 0, 2, 1])  # green, red, blue


@pytest.mark.parametrize("layout,message", [
    ({"pets/a.png": 1}, "--labels reads class folders (%(d)s/pets/<class>/*.png), and %(d)s/pets "
                        "has none"),
    ({"pets/cat/a.png": 1, "pets/dog/b.png": 1, "pets/c.png": 1},
     "%(d)s/pets holds 1 file beside its class folders (such as c.png)"),
    ({"pets/cat/a.png": 1}, "%(d)s/pets has one class folder (cat); a conditional model needs two "
                            "classes or more"),
    ({"pets/cat/a.png": 1, "pets/dog/b.jpg": 1},
     "The class folder %(d)s/pets/dog holds no file matching *.png"),
    ({"pets/cat/a.png": 1, "pets/dog/b.png": None, "pets/dog/c.png": None},
     "The class folder %(d)s/pets/dog holds no readable image (2 files, such as b.png: "),
])
def test_class_folders_that_are_no_set_of_classes_are_one_sentence(tmp_path, layout, message):
  for path, readable in layout.items():
    os.makedirs(os.path.dirname(str(tmp_path / path)), exist_ok=True)
    write_images(str(tmp_path / "scratch"), 1, size=(20, 20), ext="png")
    os.replace(str(tmp_path / "scratch" / "img_000.png"), str(tmp_path / path))
    if not readable:
      (tmp_path / path).write_bytes(b"not an image")
  with pytest.raises(UserError) as err:
    open_dataset("pets", str(tmp_path), "*.png", 20, None, 8, None, crop=False, labels=True)
  assert str(err.value).startswith(message % {"d": tmp_path}), str(err.value)


def test_an_idx_dataset_without_its_files_says_how_to_download_it(tmp_path):
  with pytest.raises(UserError) as err:
    open_dataset("fashion_mnist", str(tmp_path), *FLAG_SIZES)
  assert str(err.value) == ("No Fashion-MNIST files in %s/fashion_mnist; run 'python download.py "
                            "fashion_mnist --data_dir %s'." % (tmp_path, tmp_path))


CIFAR_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse",
               b"ship", b"truck"]


def write_cifar(folder, per_batch=12, seed=0):
  """CIFAR-10's python batches as its tarball holds them (pickled dicts of bytes keys, 'data'
  uint8 [N, 3072] in R, G, B planes): made-up images, class k a bright square at column 3k."""
  import pickle
  rng = np.random.RandomState(seed)
  os.makedirs(folder, exist_ok=True)
  for name in ["data_batch_%d" % i for i in range(1, 6)] + ["test_batch"]:
    labels = [int(k) for k in rng.randint(0, 10, per_batch)]
    images = rng.randint(0, 60, (per_batch, 32, 32, 3)).astype(np.uint8)
    for i, k in enumerate(labels):
      images[i, 10:20, 3 * k:3 * k + 4, :] = 240
    batch = {b"batch_label": name.encode(), b"labels": labels,
             b"data": images.transpose(0, 3, 1, 2).reshape(per_batch, 3072),
             b"filenames": [b"x.png"] * per_batch}
    with open(os.path.join(folder, name), "wb") as f:
      pickle.dump(batch, f, protocol=4)
  with open(os.path.join(folder, "batches.meta"), "wb") as f:
    pickle.dump({b"label_names": CIFAR_NAMES, b"num_vis": 3072}, f, protocol=4)
  return folder


def test_cifar10_batches_are_read_as_ten_named_classes_of_colour_images(tmp_path):
  write_cifar(str(tmp_path / "cifar10"))
  data = open_dataset("cifar10", str(tmp_path), *FLAG_SIZES[:4] + (None, False))
  assert len(data) == 72 and data.y_dim == 10 and data.label_names[8] == "ship"
  assert data.description["kind"] == "cifar10" and data.description["channels"] == 3
  images, labels = data.get(list(range(6)))
  assert images.shape == (6, 64, 64, 3) and 0.0 <= images.min() and images.max() <= 1.0
  assert labels.shape == (6, 10) and (labels.sum(1) == 1).all()
  native = open_dataset("cifar10", str(tmp_path), "*.jpg", 108, None, 32, None, False)
  x, y = native.get([0])
  column = int(np.argmax(x[0, 15, :, 0]))  # the class's square, read back from the pixels
  assert column // 3 == int(y[0].argmax())


def test_a_cifar10_batch_that_asks_for_anything_but_arrays_is_refused(tmp_path):
  import pickle
  folder = write_cifar(str(tmp_path / "cifar10"))

  class Payload(object):
    def __reduce__(self):
      return (os.system, ("echo ran > %s" % (tmp_path / "ran"),))

  with open(os.path.join(folder, "data_batch_3"), "wb") as f:
    pickle.dump({b"data": Payload()}, f, protocol=4)
  with pytest.raises(UserError) as err:
    open_dataset("cifar10", str(tmp_path), *FLAG_SIZES)
  assert "data_batch_3 is not a CIFAR-10 python batch (it asks for posix.system" in str(err.value)
  assert not (tmp_path / "ran").exists()
  os.remove(os.path.join(folder, "test_batch"))
  with pytest.raises(UserError, match="is incomplete \\(missing test_batch\\)"):
    open_dataset("cifar10", str(tmp_path), *FLAG_SIZES)


def write_mnist_as_class_folders(folder):
  """The bundled MNIST sample (train + test) as PNG class folders 0-9, one file per digit."""
  from dataset import mnist_splits
  train_x, train_y, test_x, test_y, _ = mnist_splits("/nonexistent")
  for i, (image, label) in enumerate(zip(np.concatenate([train_x, test_x]),
                                         np.concatenate([train_y, test_y]))):
    os.makedirs(os.path.join(folder, str(label)), exist_ok=True)
    Image.fromarray(image).save(os.path.join(folder, str(label), "%05d.png" % i))
  return folder


def test_mnist_as_class_folders_is_read_as_the_same_digits_and_labels(tmp_path):
  """The folder path feeds the conditional model exactly what the IDX path does: the same 5,000
  images, pixel for pixel, each with its own label (in another order)."""
  write_mnist_as_class_folders(str(tmp_path / "digits"))
  folder = open_dataset("digits", str(tmp_path), "*.png", 28, None, 28, None, False, labels=True)
  idx = MnistData("/nonexistent")
  assert folder.label_names == [str(d) for d in range(10)] and folder.c_dim == 1
  assert len(folder) == len(idx) == 5000 and folder.value_range == idx.value_range

  def pairs(data):
    """Every (image's bytes, label) of data, sorted."""
    images, labels = data.get(list(range(len(data))))
    rows = np.round(images * 255).astype(np.uint8).reshape(len(data), -1)
    return sorted(zip([row.tobytes() for row in rows], labels.argmax(1).tolist()))

  assert pairs(folder) == pairs(idx)
