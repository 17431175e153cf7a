"""Shared fixtures: tiny models in fresh graphs, small real datasets."""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT_DIR)

import hardware  # noqa: E402

# as main.py does: oneDNN decided before TensorFlow loads, and its C++ start-up lines hidden
tf = hardware.import_tensorflow()

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

tf.get_logger().setLevel("ERROR")

from dataset import ImageFolderData, MnistData  # noqa: E402
from model import DCGAN  # noqa: E402
import settings  # noqa: E402

TINY = dict(batch_size=4, sample_num=4, output_height=16, output_width=16, gf_dim=4, df_dim=4,
            gfc_dim=16, dfc_dim=16, z_dim=8)


def Config(**values):
  """What train(config) reads, as main.py's flags would give it: one epoch unless told, the
  others training.TRAIN_DEFAULTS' and the model's."""
  return settings.Config(dict(dict(epoch=1), **values))


def write_images(folder, count, size=(30, 40), mode="RGB", seed=0, ext="jpg"):
  """count real image files (smooth gradients plus noise) of size (w, h)."""
  rng = np.random.RandomState(seed)
  os.makedirs(folder, exist_ok=True)
  w, h = size
  yy, xx = np.mgrid[0:h, 0:w]
  for i in range(count):
    base = np.stack([xx * 255.0 / w, yy * 255.0 / h, np.full_like(xx, 25.0 * (i % 10))], -1)
    pixels = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    img = Image.fromarray(pixels, "RGB")
    if mode != "RGB":
      img = img.convert(mode)
    img.save(os.path.join(folder, "img_%03d.%s" % (i, ext)))
  return folder


ATTRIBUTE_NAMES = ("Red", "Large", "Dark")  # what write_attribute_folder draws


def write_attribute_folder(folder, count, size=16, seed=0, names=ATTRIBUTE_NAMES):
  """count images whose attributes are visible, and their list_attr_celeba.txt: a red square
  (Red) or a blue one, large (Large: two thirds of the image across) or small (a third), on a
  dark background (Dark) or a light one, each attribute drawn at random per image, a little
  noise on top.  Returns {file: (1/0, ...)}."""
  rng = np.random.RandomState(seed)
  os.makedirs(folder, exist_ok=True)
  yy, xx = np.mgrid[0:size, 0:size] - (size - 1) / 2.0
  rows = {}
  for i in range(count):
    red, large, dark = (int(v) for v in rng.randint(0, 2, 3))
    shape = np.maximum(abs(xx), abs(yy)) <= size / (3.0 if large else 6.0)
    pixels = np.full((size, size, 3), 40.0 if dark else 215.0)
    pixels[shape] = (220, 30, 30) if red else (30, 30, 220)
    pixels = np.clip(pixels + rng.normal(0, 8, pixels.shape), 0, 255).astype(np.uint8)
    name = "%06d.jpg" % (i + 1)
    Image.fromarray(pixels, "RGB").save(os.path.join(folder, name), quality=95)
    rows[name] = (red, large, dark)
  with open(os.path.join(folder, "list_attr_celeba.txt"), "w") as f:
    f.write("%d\n%s\n" % (count, " ".join(names)))
    for name, values in rows.items():
      f.write("%s %s\n" % (name, " ".join("1" if v else "-1" for v in values)))
  return rows


def pytest_addoption(parser):
  """TensorFlow.js's converter pins an older TensorFlow, so its test runs only where `make
  test-tfjs` gave it a virtualenv of its own and @tensorflow/tfjs from npm."""
  parser.addoption("--tfjs-converter", default=None,
                   help="tensorflowjs_converter to test the SavedModel with (make test-tfjs)")
  parser.addoption("--tfjs-modules", default=None,
                   help="a node_modules folder holding @tensorflow/tfjs (make test-tfjs)")


def pytest_configure(config):
  config.addinivalue_line(
      "markers", "serial: a test that times how soon workers notice a lost one; `make test` "
      "runs these after the others, alone on the machine (the others run two at a time)")


@pytest.fixture
def graph_session():
  """A fresh graph and a Session on it."""
  graph = tf.Graph()
  with graph.as_default():
    sess = tf.Session(graph=graph)
    yield sess
    sess.close()


def tiny_dcgan(sess, tmp_path, conditional=False, **overrides):
  kwargs = dict(TINY)
  if conditional:
    kwargs.update(y_dim=10, c_dim=1, dataset_name="mnist")
  else:
    kwargs.update(c_dim=3, dataset_name="faces", input_height=24, input_width=24, crop=True)
  kwargs.update(checkpoint_dir=str(tmp_path / "checkpoint"), sample_dir=str(tmp_path / "samples"),
                out_dir=str(tmp_path), seed=123)
  kwargs.update(overrides)
  return DCGAN(sess, **kwargs)


@pytest.fixture(scope="session")
def mnist16():
  """The bundled real MNIST sample, resized to 16x16 for tiny conditional models."""
  return MnistData("/nonexistent-data-dir", 16, 16)


@pytest.fixture
def faces(tmp_path):
  """A folder of 12 real JPEG files, read as 24x24 center crops resized to 16x16."""
  write_images(str(tmp_path / "data" / "faces"), 12)
  return ImageFolderData(str(tmp_path / "data"), "faces", "*.jpg", 24, 24, 16, 16, crop=True)
