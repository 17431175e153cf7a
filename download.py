"""Download the datasets main.py trains on.

    python download.py mnist fashion_mnist cifar10 celebA lsun [--data_dir ./data] [--mirror URL]

  mnist   the four IDX .gz files into <data_dir>/mnist (main.py reads them as they are), each
          from the first of the well-known mirrors (MNIST_SOURCES) that serves it intact
  fashion_mnist  the same for Fashion-MNIST into <data_dir>/fashion_mnist (FASHION_MNIST_SOURCES)
  cifar10 cifar-10-python.tar.gz, its python batches extracted to <data_dir>/cifar10
  celebA  img_align_celeba.zip, extracted to <data_dir>/celebA/*.jpg
  lsun    <category>_train_lmdb.zip (bedroom by default) into <data_dir>/lsun_lmdb, and its
          images written out to <data_dir>/lsun/ for main.py (see --lsun_limit)

--mirror URL fetches the same file names from another host:
URL + 'train-images-idx3-ubyte.gz', URL + 'img_align_celeba.zip',
URL + 'bedroom_train_lmdb.zip'; only that host is used.

Every download shows a progress bar, resumes a partial file (HTTP Range) after
an interruption, is checked (against the published MD5 where one exists, and
by reading the archive through), and lands under its final name only when
complete.  A dataset folder counts as present once its '.complete.json' is
written, last; running the command again then does nothing.  One file is fetched by
fetching.py, an archive extracted by archives.py; this program knows the sources.
"""
import argparse
import os
import re
import shutil
import sys
import time

from tqdm import tqdm

from archives import extract_tar, extract_zip, validate_tar, validate_zip
from fetching import Unreachable, fetch, fetch_first, file_digests, mirror_failed
from utils import UserError, write_json_atomic

MARKER = ".complete.json"

# The well-known MNIST mirrors, tried in turn for each file (the published MD5 decides what is
# good): PyTorch's S3 copy and the CVDF's Google Cloud copy first, because the original's default
# host, yann.lecun.com, has been unreliable for years; it is only the last resort.
MNIST_SOURCES = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
# The published MD5s of an IDX dataset's four files, in dataset.idx.MNIST_FILES' order (train
# images, train labels, test images, test labels; the files' names are that table's, .gz).
MNIST_MD5S = ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
              "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c")
# Fashion-MNIST (Zalando Research, MIT licence): its own host, then its repository's copy; the
# published MD5s, as torchvision lists them.
FASHION_MNIST_SOURCES = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
FASHION_MNIST_MD5S = ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                      "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310")
CIFAR10_TAR = "cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"  # published (the page below; torchvision's too)
CIFAR10_SOURCE = "https://www.cs.toronto.edu/~kriz/"
# celebA's aligned images and their 40 attributes, from the authors' Google Drive: the files'
# ids and MD5s as torchvision's CelebA lists them.
CELEBA_DRIVE = "https://drive.usercontent.google.com/download?id=%s&export=download&confirm=t"
CELEBA_ZIP = "img_align_celeba.zip"
CELEBA_MD5 = "00d2c5bc6d35e252742224ab0c1e8fcb"
CELEBA_SOURCE = CELEBA_DRIVE % "0B7EVK8r0v71pZjFTYXZWM3FlRnM"
CELEBA_ATTRIBUTES_MD5 = "75e246fa4810816ffd6ee81facbd244c"  # (its name: dataset.ATTRIBUTE_FILE)
CELEBA_ATTRIBUTES_SOURCE = CELEBA_DRIVE % "0B7EVK8r0v71pblRyaVFSWGxPY0U"
LSUN_SOURCE = "http://dl.yf.io/lsun/scenes/"

def complete(folder):
  return os.path.exists(os.path.join(folder, MARKER))


def mark_complete(folder, info):
  info = dict(info, completed=time.strftime("%Y-%m-%d %H:%M:%S"))
  write_json_atomic(os.path.join(folder, MARKER), info)


# ----------------------------------------------------------------------------
# datasets


def idx_download(dataset):
  """(its name in messages, the sources tried in turn, its files: (name, published MD5, IDX
  rank) each) of an IDX dataset, its names and title as dataset.idx states them."""
  from dataset.idx import IDX_DATASETS, MNIST_FILES as IDX_NAMES
  sources, md5s = {"mnist": (MNIST_SOURCES, MNIST_MD5S),
                   "fashion_mnist": (FASHION_MNIST_SOURCES, FASHION_MNIST_MD5S)}[dataset]
  files = tuple((stem + ".gz", md5, int(stem.split("-idx")[1][0]))  # 'idx3': rank 3
                for stem, md5 in zip(IDX_NAMES.values(), md5s))
  return IDX_DATASETS[dataset].title, sources, files


def download_mnist(data_dir, mirror=None, dataset="mnist"):
  """The four IDX files of MNIST (or of dataset: fashion_mnist) into <data_dir>/<dataset>."""
  from dataset import read_idx
  title, official, published = idx_download(dataset)
  folder = os.path.join(data_dir, dataset)
  if complete(folder):
    print("Found %s - skip" % title)
    return folder
  os.makedirs(folder, exist_ok=True)
  sources = [mirror] if mirror else list(official)
  files = {}
  for name, md5, rank in published:
    dest = os.path.join(folder, name)
    if os.path.exists(dest):
      read_idx(dest, rank)  # landed earlier in an interrupted run: still check it reads
      files[name] = {"sha256": file_digests(dest)[1]}
      continue
    url, sha256 = fetch_first(sources, name, dest, expected_md5=md5, official=not mirror,
                              validate=lambda path, rank=rank: read_idx(path, rank),
                              record_dir=data_dir)
    files[name] = {"sha256": sha256, "url": url}
  mark_complete(folder, {"dataset": dataset, "files": files})
  print(" [*] %s is in %s" % (title, folder))
  return folder


def download_cifar10(data_dir, mirror=None):
  """CIFAR-10's python batches into <data_dir>/cifar10, from its published tar.gz."""
  from dataset import CifarData
  folder = os.path.join(data_dir, "cifar10")
  if complete(folder):
    print("Found CIFAR-10 - skip")
    return folder
  tar_path = os.path.join(data_dir, CIFAR10_TAR)
  url = (mirror or CIFAR10_SOURCE) + CIFAR10_TAR
  if not os.path.exists(tar_path):
    fetch(url, tar_path, expected_md5=CIFAR10_MD5, official=not mirror, validate=validate_tar,
          record_dir=data_dir)
  if os.path.isdir(folder):
    shutil.rmtree(folder)  # an earlier extraction that did not finish (no marker)
  extract_tar(tar_path, folder, strip_prefix="cifar-10-batches-py/")
  data = CifarData(data_dir)  # reads: a broken batch is said here, not at training
  mark_complete(folder, {"dataset": "cifar10", "images": len(data), "source": url})
  os.remove(tar_path)
  print(" [*] CIFAR-10: %d images of %d classes in %s" % (len(data), data.y_dim, folder))
  return folder


def download_celeb_a(data_dir, mirror=None):
  """celebA's aligned images into <data_dir>/celebA, and beside them its attribute file (fetched
  on its own when the images are there already, from a download before it was)."""
  folder = os.path.join(data_dir, "celebA")
  if complete(folder):
    print("Found Celeb-A - skip")
  else:
    _celeb_a_images(data_dir, folder, mirror)
  _celeb_a_attributes(data_dir, folder, mirror)
  return folder


def _drive_refused(err, name, mirror):
  """Google Drive's answer when its quota is used up (a web page, not the file), said as such."""
  if not mirror and ("not a readable zip" in str(err) or "line 1:" in str(err)):
    return UserError("Google Drive did not send %s (it sends a web page instead when its download "
                     "quota is used up); try later or use --mirror URL." % name)
  return err


def _celeb_a_images(data_dir, folder, mirror):
  zip_path = os.path.join(data_dir, CELEBA_ZIP)
  url = mirror + CELEBA_ZIP if mirror else CELEBA_SOURCE
  if not os.path.exists(zip_path):
    try:
      fetch(url, zip_path, expected_md5=CELEBA_MD5, official=not mirror, validate=validate_zip,
            record_dir=data_dir)
    except UserError as err:
      raise _drive_refused(err, CELEBA_ZIP, mirror)
  extract_zip(zip_path, folder, strip_prefix="img_align_celeba/")
  count = len([f for f in os.listdir(folder) if f.lower().endswith(".jpg")])
  mark_complete(folder, {"dataset": "celebA", "images": count, "source": url})
  os.remove(zip_path)
  print(" [*] Celeb-A: %d images in %s" % (count, folder))


def _celeb_a_attributes(data_dir, folder, mirror):
  """list_attr_celeba.txt into the images' folder (main.py --attributes reads it there)."""
  from dataset import ATTRIBUTE_FILE, read_attribute_file
  path = os.path.join(folder, ATTRIBUTE_FILE)
  if os.path.exists(path):
    return
  url = mirror + ATTRIBUTE_FILE if mirror else CELEBA_ATTRIBUTES_SOURCE
  try:
    fetch(url, path, expected_md5=CELEBA_ATTRIBUTES_MD5, official=not mirror,
          validate=read_attribute_file, record_dir=data_dir)
  except UserError as err:
    raise _drive_refused(err, ATTRIBUTE_FILE, mirror)
  names, rows = read_attribute_file(path)
  print(" [*] Celeb-A: %d attributes of %d images in %s" % (len(names), len(rows), path))


def image_extension(data):
  if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
    return ".webp"
  if data[:3] == b"\xff\xd8\xff":
    return ".jpg"
  if data[:8] == b"\x89PNG\r\n\x1a\n":
    return ".png"
  return ".img"


def lmdb_to_images(lmdb_dir, out_dir, limit=0):
  """Write every image stored in an LSUN LMDB to out_dir/<key><ext>, bytes untouched.

  Returns (count, extensions seen).  Needs the `lmdb` package.
  """
  try:
    import lmdb
  except ImportError:
    raise UserError("Converting LSUN needs the lmdb package: pip install lmdb.")
  os.makedirs(out_dir, exist_ok=True)
  count, extensions = 0, set()
  try:
    env = lmdb.open(lmdb_dir, readonly=True, lock=False, readahead=False, max_readers=1)
  except lmdb.Error as err:
    raise UserError("Cannot open the LMDB in %s (%s)." % (lmdb_dir, err))
  with env, env.begin(write=False) as txn:
    total = env.stat()["entries"]
    if limit:
      total = min(total, limit)
    with tqdm(total=total, desc="writing images", unit="img", leave=False, disable=None) as bar:
      for key, value in txn.cursor():
        ext = image_extension(value)
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", key.decode("ascii", "replace")) + ext
        path = os.path.join(out_dir, name)
        if not os.path.exists(path):
          tmp = path + ".part"
          with open(tmp, "wb") as f:
            f.write(value)
          os.replace(tmp, path)
        extensions.add(ext)
        count += 1
        bar.update(1)
        if limit and count >= limit:
          break
  return count, sorted(extensions)


def download_lsun(data_dir, mirror=None, category="bedroom", limit=0):
  folder = os.path.join(data_dir, "lsun")
  if complete(folder):
    print("Found LSUN - skip")
    return folder
  lmdb_root = os.path.join(data_dir, "lsun_lmdb")
  name = "%s_train_lmdb" % category
  lmdb_dir = os.path.join(lmdb_root, name)
  if not os.path.exists(os.path.join(lmdb_dir, "data.mdb")):
    zip_path = os.path.join(lmdb_root, name + ".zip")
    if not os.path.exists(zip_path):
      fetch((mirror or LSUN_SOURCE) + name + ".zip", zip_path, validate=validate_zip,
            record_dir=data_dir)
    extract_zip(zip_path, lmdb_dir, strip_prefix=name + "/")
    os.remove(zip_path)
  count, extensions = lmdb_to_images(lmdb_dir, folder, limit)
  mark_complete(folder, {"dataset": "lsun", "category": category, "images": count})
  pattern = "*" + extensions[0] if len(extensions) == 1 else "*"
  print(" [*] LSUN %s: %d images in %s; train with\n"
        "     python main.py --dataset lsun --input_fname_pattern '%s' --crop --input_height 256 "
        "--output_height 64 --train" % (category, count, folder, pattern))
  return folder


def parse_args(argv):
  parser = argparse.ArgumentParser(description="Download datasets for DCGAN.")
  parser.add_argument("datasets", metavar="N", type=str, nargs="+",
                      choices=["celebA", "lsun", "mnist", "fashion_mnist", "cifar10"],
                      help="name of dataset to download [celebA, lsun, mnist, fashion_mnist, "
                      "cifar10]")
  parser.add_argument("--data_dir", default="./data", help="where datasets go [./data]")
  parser.add_argument("--mirror", default=None, metavar="URL",
                      help="fetch the same file names from URL instead of the official hosts")
  parser.add_argument("--lsun_category", default="bedroom", help="LSUN scene category [bedroom]")
  parser.add_argument("--lsun_limit", type=int, default=0,
                      help="write out only the first N LSUN images (0: all) [0]")
  return parser.parse_args(argv)


def main(argv=None):
  args = parse_args(sys.argv[1:] if argv is None else argv)
  mirror = args.mirror
  if mirror and not mirror.endswith("/"):
    mirror += "/"
  try:
    os.makedirs(args.data_dir, exist_ok=True)
    if "celebA" in args.datasets:
      download_celeb_a(args.data_dir, mirror)
    if "lsun" in args.datasets:
      download_lsun(args.data_dir, mirror, args.lsun_category, args.lsun_limit)
    for dataset in ("mnist", "fashion_mnist"):
      if dataset in args.datasets:
        download_mnist(args.data_dir, mirror, dataset)
    if "cifar10" in args.datasets:
      download_cifar10(args.data_dir, mirror)
  except Unreachable as err:
    print("error: %s" % (mirror_failed(err, mirror) if mirror else err), file=sys.stderr)
    return 1
  except UserError as err:
    print("error: %s" % err, file=sys.stderr)
    return 1
  except OSError as err:
    print("error: %s (%s)." % (err.strerror or err, err.filename or args.data_dir), file=sys.stderr)
    return 1
  except KeyboardInterrupt:
    print("\ninterrupted; run the same command again to resume.", file=sys.stderr)
    return 130
  return 0


if __name__ == "__main__":
  sys.exit(main())
