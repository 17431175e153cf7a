"""Class folders <data_dir>/<dataset>/<class>/<images>, the layout of torchvision's ImageFolder
and Keras' image_dataset_from_directory, read with --labels: the classes are the subfolders,
sorted by name, and the model is the original's conditional one (y concatenated in G and D, as
MNIST's) at the images' size and channels; pixels in [0, 1], as its sigmoid gives them."""
import glob
import os

import numpy as np

from dataset.folder import LabelledFolderData
from utils import UNREADABLE_IMAGE_ERRORS, UserError, image_channels, plural


def _check_readable(folder, files):
  """A one-sentence UserError if none of a class's files is a readable image (an unreadable one
  is replaced by the next readable file, which would lie in another class); the first readable
  one ends the search, so a class of good images costs one header read."""
  reasons = []
  for path in files:
    try:
      image_channels(path)
      return
    except UNREADABLE_IMAGE_ERRORS as err:
      reasons.append((os.path.basename(path), str(err).splitlines()[0] if str(err) else
                      type(err).__name__))
  raise UserError("The class folder %s holds no readable image (%s, such as %s: %s); put its "
                  "images there or remove it." % (folder, plural(len(files), "file"),
                                                  reasons[0][0], reasons[0][1]))


class ClassFoldersData(LabelledFolderData):
  """An image folder (crop, resize, bad files, cache: ImageFolderData) whose images are labelled
  by the class folder they lie in.  label_names: the classes, in label order; labels: each
  file's."""

  def _find_files(self, folder, hint):
    """Every class folder's files matching the pattern, class by class; a UserError naming what
    to change for a folder that is no set of classes."""
    entries = [e for e in os.listdir(folder) if not e.startswith(".")]
    classes = sorted(e for e in entries if os.path.isdir(os.path.join(folder, e)))
    loose = sorted(e for e in entries if os.path.isfile(os.path.join(folder, e)))
    if not classes:
      raise UserError("--labels reads class folders (%s/<class>/%s), and %s has none; put each "
                      "class's images in a folder of its own, or drop --labels to train on them "
                      "unlabelled." % (folder, self.pattern, folder))
    if loose:
      raise UserError("%s holds %s beside its class folders (such as %s); with --labels every "
                      "image lies in its class's folder: move them into one, or out."
                      % (folder, plural(len(loose), "file"), loose[0]))
    if len(classes) < 2:
      raise UserError("%s has one class folder (%s); a conditional model needs two classes or "
                      "more: add another, or drop --labels to train on it unlabelled."
                      % (folder, classes[0]))
    files, labels = [], []
    for label, name in enumerate(classes):
      found = sorted(f for f in glob.glob(os.path.join(glob.escape(os.path.join(folder, name)),
                                                       self.pattern)) if os.path.isfile(f))
      if not found:
        raise UserError("The class folder %s holds no file matching %s; put its images there "
                        "or remove it." % (os.path.join(folder, name), self.pattern))
      _check_readable(os.path.join(folder, name), found)
      files += found
      labels += [label] * len(found)
    self.unmatched = []
    self.label_names, self.labels = classes, np.array(labels, np.int64)
    self.y_rows = np.eye(len(classes), dtype=np.float32)[self.labels]
    return files

  @property
  def description(self):
    return dict(super(ClassFoldersData, self).description, kind="classes",
                labels=list(self.label_names))
