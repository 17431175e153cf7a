"""The data layer: every difference between datasets lives here.

A dataset object has
  c_dim          channels of its images (1 or 3)
  y_dim          size of its labels (one-hot classes, or multi-hot attributes), or None for
                 unlabelled data
  value_range    the pixel range it produces, (0, 1) or (-1, 1)
  len(data)      number of examples
  get(indices)   -> (images [n, H, W, c_dim] float32, labels [n, y_dim] or None)
  source, digest the folder its images come from and a digest of them, or None (a run records
                 both: recorded_source)

so the training loop never asks which dataset it is training on.

One module per kind of source: the IDX datasets ('mnist', 'fashion_mnist') are read
straight from their files (raw or .gz) in <data_dir>/<dataset>, MNIST's from the
real 5,000-digit sample bundled in this project (data/mnist5k) when they are
absent (dataset/idx.py).  Any other dataset name is a folder of images
<data_dir>/<dataset>/<input_fname_pattern> (dataset/folder.py), with --labels a
folder of class folders (dataset/classes.py), or with --attributes a folder of images
labelled by its list_attr_celeba.txt (dataset/attributes.py).  This module opens the one
a run asks for and prefetches its batches.
"""
import collections
import concurrent.futures
import glob
import os

from dataset.attributes import ATTRIBUTE_FILE, AttributeFolderData, read_attribute_file
from dataset.cifar import CIFAR10, CifarData, cifar_paths, cifar_splits
from dataset.classes import ClassFoldersData
from dataset.folder import ImageCache, ImageFolderData
from dataset.idx import (BUNDLED_MNIST_DIR, IDX_DATASETS, MnistData, files_digest,
                         mnist_identity, mnist_splits, read_idx, recorded_source)
from utils import UNREADABLE_IMAGE_ERRORS, UserError, expand_path, image_channels

# What the rest of the project reads of the data layer (its modules: one per kind of source).
__all__ = ["ATTRIBUTE_FILE", "AttributeFolderData", "BUNDLED_MNIST_DIR", "CIFAR10",
           "ClassFoldersData", "CifarData", "IDX_DATASETS", "ImageCache", "ImageFolderData",
           "MnistData", "data_channels", "data_identity", "described", "label_count",
           "mnist_identity", "mnist_splits", "multi_hot", "open_dataset", "open_run_data",
           "prefetch", "read_attribute_file", "read_idx", "recorded_source", "split_dataset",
           "title"]


def prefetch(data, batches, workers=2, depth=4):
  """Yield data.get(indices) for each index list in batches, in order, decoded ahead.

  Up to `depth` batches are being decoded by `workers` threads while the caller
  (the Session) works on the current one; Pillow and NumPy release the GIL
  while they decode and resize.  workers=0 decodes in the calling thread.
  """
  batches = iter(batches)
  if workers <= 0:
    for indices in batches:
      yield data.get(indices)
    return
  with concurrent.futures.ThreadPoolExecutor(max_workers=workers,
                                             thread_name_prefix="dcgan-loader") as pool:
    pending = collections.deque()
    try:
      for indices in batches:
        pending.append(pool.submit(data.get, indices))
        if len(pending) >= depth:
          yield pending.popleft().result()
      while pending:
        yield pending.popleft().result()
    finally:
      for future in pending:
        future.cancel()


def open_dataset(dataset, data_dir, input_fname_pattern, input_height, input_width,
                 output_height, output_width, crop, cache_dir=None, labels=False, attributes=""):
  """The dataset object for --dataset: MNIST, a folder of images, with labels (--labels) a
  folder of class folders, or with attributes (--attributes: 'all' or names) a folder of images
  with an attribute file (the folders optionally cached).

  The sizes and crop are the run's (main.py's flags, or a DCGAN's own arguments): the data
  layer states no default of its own."""
  if (dataset in IDX_DATASETS or dataset == CIFAR10) and (labels or attributes):
    raise UserError("--%s reads an image folder's own labels, and %s comes labelled by its "
                    "classes; drop it." % ("labels" if labels else "attributes", title(dataset)))
  if labels and attributes:
    raise UserError("--labels (class folders) and --attributes (an attribute file) are two ways "
                    "of labelling a folder; give one of them.")
  if dataset in IDX_DATASETS:
    return MnistData(data_dir, output_height, output_width or output_height, dataset)
  if dataset == CIFAR10:
    return CifarData(data_dir, output_height, output_width or output_height)
  sizes = (data_dir, dataset, input_fname_pattern, input_height, input_width, output_height,
           output_width, crop, cache_dir)
  if attributes:
    return AttributeFolderData(*sizes, attributes=attributes)
  return (ClassFoldersData if labels else ImageFolderData)(*sizes)


def open_run_data(config):
  """The dataset object a run's settings ask for (open_dataset; config: the flags' names)."""
  return open_dataset(config.dataset, config.data_dir, config.input_fname_pattern,
                      config.input_height, config.input_width, config.output_height,
                      config.output_width, config.crop,
                      cache_dir=expand_path(config.cache_dir) if config.cache else None,
                      labels=config.labels, attributes=config.attributes)


def data_channels(dataset, data_dir, input_fname_pattern="*.jpg"):
  """Image channels as the original DCGAN read them from the data, or None if there is none.

  mnist: 1.  A folder of images: the first readable image's channels
  (grayscale 1, colour 3).  None when the folder has no readable image.
  """
  c_dim = described(dataset)["channels"]
  if c_dim is not None:
    return c_dim
  for path in sorted(glob.glob(os.path.join(data_dir, dataset, input_fname_pattern))):
    try:
      return image_channels(path)
    except UNREADABLE_IMAGE_ERRORS:
      continue
  return None


# What a run records of its data (FLAGS.json's "data"), as each dataset object's `description`
# gives it: its kind (an IDX dataset's name, "mnist" or "fashion_mnist"; "cifar10"; "images";
# "classes"; "attributes"), the folder its images come from ("source"; recorded_source), a
# digest of its files or None, its class names in label order or None ("labels": y is one-hot
# over them), its images' channels.  An attribute dataset adds "y": "multi_hot" (y has a 1 for
# each attribute present: multi_hot) and each attribute's "frequency" in its images.
DESCRIPTION_FIELDS = ("kind", "source", "digest", "labels", "channels")


def described(dataset):
  """The description of --dataset that its name alone gives, for test mode on a run recorded
  before runs recorded theirs: MNIST's, or an unlabelled image folder whose channels its
  checkpoint tells (None)."""
  if dataset in IDX_DATASETS:
    return {"kind": dataset, "source": None, "digest": None,
            "labels": list(IDX_DATASETS[dataset].names), "channels": MnistData.c_dim}
  if dataset == CIFAR10:
    return {"kind": dataset, "source": None, "digest": None, "labels": list(CIFAR10_NAMES),
            "channels": CifarData.c_dim}
  return {"kind": "images", "source": None, "digest": None, "labels": None, "channels": None}


def multi_hot(description):
  """Whether a description's y is multi-hot (attributes, several at once) rather than one-hot."""
  return description.get("y") == "multi_hot"


def label_count(description):
  """y's width for a description: its number of classes, or None without labels."""
  return len(description["labels"]) if description.get("labels") else None


CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck")  # (its batches.meta's, for a description without the data)


def title(kind):
  """A published dataset's name in messages ('MNIST', 'Fashion-MNIST', 'CIFAR-10'), or kind."""
  if kind in IDX_DATASETS:
    return IDX_DATASETS[kind].title
  return "CIFAR-10" if kind == CIFAR10 else kind


def split_dataset(data_dir, kind):
  """(train_x, train_y, test_x, test_y, folder, class names) of a dataset published with its own
  training and test splits (an IDX dataset, CIFAR-10): uint8 images [N, H, W(, 3)], int labels;
  None for another kind."""
  if kind in IDX_DATASETS:
    return mnist_splits(data_dir, kind) + (list(IDX_DATASETS[kind].names),)
  if kind == CIFAR10:
    return cifar_splits(data_dir)
  return None


def data_identity(data_dir, kind):
  """(recorded_source, digest) of the files of a published dataset data_dir gives, unsaid;
  None for a kind without a digest (an image folder)."""
  if kind in IDX_DATASETS:
    return mnist_identity(data_dir, kind)
  if kind == CIFAR10:
    paths = cifar_paths(data_dir)
    return recorded_source(os.path.dirname(paths["batches.meta"])), files_digest(paths)
  return None
