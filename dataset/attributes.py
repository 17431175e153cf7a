"""An image folder whose images carry attributes, read with --attributes: celebA's
list_attr_celeba.txt (first line the image count, second the attribute names, then
`<file> 1 -1 ...` per image: 1 present, -1 absent), found beside the images as ATTRIBUTE_FILE.
y is multi-hot over the attributes asked for (several at once), concatenated in G and D as
MNIST's one-hot is; pixels in [0, 1], as the conditional generator's sigmoid gives them."""
import os

import numpy as np

from dataset.folder import ImageFolderData, LabelledFolderData
from utils import UserError, plural

ATTRIBUTE_FILE = "list_attr_celeba.txt"
ALL_ATTRIBUTES = "all"


def _malformed(path, number, why):
  return UserError("%s, line %d: %s; the file is celebA's format (the image count, the attribute "
                   "names, then '<file> 1 -1 ...' per image)." % (path, number, why))


def read_attribute_file(path):
  """(attribute names, {file name: int8 row of 1 and 0}) of a list_attr_celeba.txt-format file;
  a UserError naming the line of the first malformed one."""
  try:
    with open(path) as f:
      lines = f.read().splitlines()
  except (OSError, UnicodeDecodeError) as err:
    raise UserError("Cannot read the attribute file %s (%s)." % (path, err))
  if len(lines) < 2 or not lines[0].strip().isdigit():
    raise _malformed(path, 1, "the first line should be the number of images, not %r"
                     % (lines[0][:40] if lines else ""))
  names = lines[1].split()
  if not names or len(set(names)) != len(names):
    raise _malformed(path, 2, "the second line should name each attribute once")
  rows = {}
  for number, line in enumerate(lines[2:], start=3):
    fields = line.split()
    if not fields:
      continue
    if len(fields) != len(names) + 1 or any(v not in ("1", "-1", "0") for v in fields[1:]):
      raise _malformed(path, number, "expected a file name and %d values of 1 or -1, found %r"
                       % (len(names), line[:60]))
    rows[fields[0]] = np.array([v == "1" for v in fields[1:]], np.int8)
  if int(lines[0]) != len(rows):
    print(" [!] %s says %d images and lists %d" % (path, int(lines[0]), len(rows)))
  return names, rows


def attributes_asked(asked, names, path):
  """The attributes --attributes asks for ('all', or names joined by commas), in the file's
  order; a UserError naming one the file does not have."""
  if asked.strip() == ALL_ATTRIBUTES:
    return list(names)
  wanted = [name.strip() for name in asked.split(",") if name.strip()]
  unknown = [name for name in wanted if name not in names]
  if unknown or not wanted:
    raise UserError("--attributes %s: %s has no attribute %s (it has %s); name some of them, "
                    "joined by commas, or give --attributes all."
                    % (asked, path, unknown[0] if unknown else "named",
                       ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")))
  return [name for name in names if name in wanted]


class AttributeFolderData(LabelledFolderData):
  """An image folder (crop, resize, bad files, cache: ImageFolderData) whose images are labelled
  by the attribute file beside them.  label_names: the attributes asked for; y_rows: each
  file's multi-hot row over them (its description says how often each is present)."""

  def __init__(self, data_dir, dataset, input_fname_pattern, input_height, input_width,
               output_height, output_width, crop, cache_dir=None, attributes=ALL_ATTRIBUTES):
    self.asked = attributes
    ImageFolderData.__init__(self, data_dir, dataset, input_fname_pattern, input_height,
                             input_width, output_height, output_width, crop, cache_dir)

  def _find_files(self, folder, hint):
    """The folder's images that the attribute file lists; those it does not list are counted and
    named once, a UserError if none is."""
    path = os.path.join(folder, ATTRIBUTE_FILE)
    if not os.path.isfile(path):
      raise UserError("--attributes reads %s beside the images, and %s has none; put the "
                      "attribute file there (python download.py celebA fetches celebA's)."
                      % (ATTRIBUTE_FILE, folder))
    names, rows = read_attribute_file(path)
    self.label_names = attributes_asked(self.asked, names, path)
    columns = [names.index(name) for name in self.label_names]
    found = {os.path.basename(f): f for f in ImageFolderData._find_files(self, folder, hint)}
    found.pop(ATTRIBUTE_FILE, None)
    listed = [f for name, f in found.items() if name in rows]
    unlisted = [name for name in found if name not in rows]
    if not listed:
      raise UserError("None of the %s in %s is listed in %s (it lists such as %s); the file's "
                      "names must be the images' file names." % (
                          plural(len(found), "image"), folder, ATTRIBUTE_FILE,
                          ", ".join(sorted(rows)[:3]) or "nothing"))
    if unlisted:
      print(" [!] %s of %s not listed in %s left out (such as %s)"
            % (plural(len(unlisted), "image"), folder, ATTRIBUTE_FILE, ", ".join(unlisted[:3])))
    missing = sorted(set(rows) - set(found))
    if missing:
      print(" [!] %s listed in %s not among the images (such as %s)"
            % (plural(len(missing), "file"), ATTRIBUTE_FILE, ", ".join(missing[:3])))
    self.unmatched = [name for name in self.unmatched if name != ATTRIBUTE_FILE]
    self.y_rows = np.stack([rows[name][columns] for name in found if name in rows]).astype(
        np.float32)
    return listed

  @property
  def description(self):
    return dict(super(AttributeFolderData, self).description, kind="attributes",
                labels=list(self.label_names), y="multi_hot",
                frequency=[round(float(f), 4) for f in self.y_rows.mean(0)])
