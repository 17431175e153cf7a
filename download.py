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
written, last; running the command again then does nothing.
"""
import argparse
import contextlib
import hashlib
import http.client
import json
import os
import posixpath
import re
import shutil
import socket
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib

from tqdm import tqdm

from utils import UserError, write_json_atomic

MARKER = ".complete.json"
RECORD = ".dcgan_checksums.json"  # sha256 of every file downloaded, re-checked when fetched again

# The well-known MNIST mirrors, tried in turn for each file (the published MD5 decides what is
# good): PyTorch's S3 copy and the CVDF's Google Cloud copy first, because the original's default
# host, yann.lecun.com, has been unreliable for years; it is only the last resort.
MNIST_SOURCES = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
MNIST_FILES = (  # (name, published MD5, IDX rank)
    ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", 3),
    ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", 1),
    ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", 3),
    ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", 1),
)
# Fashion-MNIST (Zalando Research, MIT licence): its own host, then its repository's copy; the
# published MD5s, as torchvision lists them.
FASHION_MNIST_SOURCES = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
FASHION_MNIST_FILES = (  # (name, published MD5, IDX rank)
    ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d", 3),
    ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe", 1),
    ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79", 3),
    ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310", 1),
)
CIFAR10_TAR = "cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"  # published (the page below; torchvision's too)
CIFAR10_SOURCE = "https://www.cs.toronto.edu/~kriz/"
CELEBA_ZIP = "img_align_celeba.zip"
CELEBA_MD5 = "00d2c5bc6d35e252742224ab0c1e8fcb"
CELEBA_DRIVE_ID = "0B7EVK8r0v71pZjFTYXZWM3FlRnM"
CELEBA_SOURCE = ("https://drive.usercontent.google.com/download?id=%s&export=download&confirm=t"
                 % CELEBA_DRIVE_ID)
LSUN_SOURCE = "http://dl.yf.io/lsun/scenes/"

CHUNK = 1 << 16
RETRIES = 3


def mirror_hint():
  return "check the network, or fetch the files from another host with --mirror URL"


# ----------------------------------------------------------------------------
# fetching


def file_digests(path):
  md5, sha256 = hashlib.md5(), hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      md5.update(block)
      sha256.update(block)
  return md5.hexdigest(), sha256.hexdigest()


def _read_record(data_dir):
  try:
    with open(os.path.join(data_dir, RECORD)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return {}


def _remote_error(url, err):
  if isinstance(err, urllib.error.HTTPError):
    return "HTTP %d %s" % (err.code, err.reason)
  reason = getattr(err, "reason", None) or err
  return str(reason)


class SourceError(UserError):
  """A source did not deliver a good file: str() is the full sentence, .reason the short why."""

  def __init__(self, message, reason):
    UserError.__init__(self, message)
    self.reason = reason


class Unreachable(SourceError):
  """The source could not be reached or answered an HTTP error (.url, .reason)."""

  def __init__(self, url, reason):
    SourceError.__init__(self, "Could not download %s (%s); %s." % (url, reason, mirror_hint()),
                         reason)
    self.url = url


def _unreachable(url, err):
  return Unreachable(url, _remote_error(url, err))


def mirror_failed(err, mirror):
  """The sentence for an Unreachable from the mirror the user chose with --mirror.

  Advising --mirror, as the official sources' failures do, would be no help to someone who
  gave one: say that their mirror failed, and what to check.
  """
  return ("Could not download %s (%s): the mirror %s given with --mirror failed; check that it is "
          "up and serves %s at that address, or leave out --mirror to download from the official "
          "sources." % (err.url, err.reason, mirror, posixpath.basename(err.url)))


class _BrokeOff(Exception):
  """The connection failed while the body was arriving (what was received is kept)."""


def _stream(url, part, name, offset):
  """One request: append to `part` from `offset` (Range) or rewrite it; returns bytes expected."""
  headers = {"User-Agent": "dcgan-tf1/download.py"}
  if offset:
    headers["Range"] = "bytes=%d-" % offset
  response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60)
  with response:
    if offset and response.status == 206:
      match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
      if not match or int(match.group(1)) != offset:
        raise SourceError("%s answered a resume request with the wrong range; delete %s and run "
                          "again." % (url, part), "answered a resume request with the wrong range")
      mode = "ab"
    else:
      offset, mode = 0, "wb"
    length = response.headers.get("Content-Length")
    total = offset + int(length) if length is not None else None
    with open(part, mode) as f, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                     unit_divisor=1024, desc=name, leave=False, disable=None) as bar:
      try:
        while True:
          chunk = response.read(CHUNK)
          if not chunk:
            break
          f.write(chunk)
          bar.update(len(chunk))
      except (http.client.HTTPException, socket.timeout, ConnectionError) as err:
        raise _BrokeOff(err)
    return total


def _download(url, part, name):
  """Fill `part` from url, resuming what it holds; a break-off is resumed up to RETRIES times."""
  attempt = 0
  while True:
    offset = os.path.getsize(part) if os.path.exists(part) else 0
    try:
      total = _stream(url, part, name, offset)
      problem = None
    except urllib.error.HTTPError as err:
      if err.code == 416 and offset:  # nothing left to send: the .part is complete
        return
      raise _unreachable(url, err)
    except (urllib.error.URLError, socket.timeout, ConnectionError, http.client.HTTPException) as err:
      raise _unreachable(url, err)
    except _BrokeOff as err:
      problem = "connection broke off (%s)" % err.args[0]
    got = os.path.getsize(part)
    if problem is None and total is not None and got < total:
      problem = "connection closed at %d of %d bytes" % (got, total)
    if problem is None:
      return
    if attempt >= RETRIES:
      reason = "stopped after %d bytes (%s)" % (got, problem)
      raise SourceError("Downloading %s %s; run the same command again to resume." % (url, reason),
                        reason)
    attempt += 1
    print(" [*] %s: %s; resuming from byte %d" % (name, problem, got))
    time.sleep(0.2 * attempt)


def _verify(url, part, name, expected_md5, official, validate, record_dir):
  """Check a finished `part` (see fetch); a rejected one is deleted.  Returns (md5, sha256)."""
  md5, sha256 = file_digests(part)
  if expected_md5 and md5 != expected_md5:
    if official:
      os.remove(part)
      raise SourceError("%s from %s is corrupt: its MD5 is %s, the published one %s; it was "
                        "deleted, run the command again." % (name, url, md5, expected_md5),
                        "MD5 %s, not the published %s" % (md5, expected_md5))
    print(" [*] %s differs from the official file (MD5 %s): the mirror serves other data, so its "
          "contents are checked instead" % (name, md5))
  record = _read_record(record_dir) if record_dir else {}
  if url in record and record[url]["sha256"] != sha256:
    os.remove(part)
    raise SourceError("%s from %s does not match the sha256 recorded when it was downloaded before "
                      "(%s...); it was deleted. If the source changed on purpose, delete %s."
                      % (name, url, record[url]["sha256"][:16], os.path.join(record_dir, RECORD)),
                      "sha256 differs from the one recorded in %s" % RECORD)
  if validate is not None:
    try:
      validate(part)
    except UserError as err:
      os.remove(part)
      reason = str(err).rstrip(".")
      raise SourceError("%s from %s is corrupt (%s); it was deleted, run the command again."
                        % (name, url, reason), "corrupt (%s)" % reason)
  return md5, sha256


def fetch(url, dest, expected_md5=None, official=True, validate=None, record_dir=None):
  """Download url to dest: resumable, verified, atomic.  Returns the file's sha256.

  The bytes go to dest + '.part'.  A '.part' left by an earlier run is resumed
  with an HTTP Range request; a connection that breaks off is resumed up to
  RETRIES times.  The finished file is checked against expected_md5 (from the
  official source a mismatch rejects it; a mirror may serve other data, so its
  contents are checked instead), against the sha256 recorded when the same URL
  was fetched before, and by validate(path); only then is it renamed to dest.
  A source's failure is a SourceError.
  """
  name = os.path.basename(dest)
  part = dest + ".part"
  os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
  _download(url, part, name)
  md5, sha256 = _verify(url, part, name, expected_md5, official, validate, record_dir)
  os.replace(part, dest)
  if record_dir:
    record = _read_record(record_dir)
    record[url] = {"sha256": sha256, "md5": md5, "size": os.path.getsize(dest)}
    write_json_atomic(os.path.join(record_dir, RECORD), record)
  return sha256


# fetch_first keeps beside a '.part' the URL its bytes came from (PART_ORIGIN), and a '.part' is
# resumed only from that URL: mirrors are independent hosts, and appending one host's bytes to
# another's could splice two different files.  Before another source is tried the '.part' is
# deleted; one of unknown origin is resumed only when there is a single source (--mirror, as
# before), deleted otherwise.  A '.part' left by an interrupted run puts its source first.
PART_ORIGIN = ".part.source"


def _partial_origin(dest):
  if not os.path.exists(dest + ".part"):
    return None
  try:
    with open(dest + PART_ORIGIN) as f:
      return f.read().strip() or None
  except OSError:
    return None


def _fetch_from(url, dest, trust_unknown, **kwargs):
  """fetch(), resuming dest's '.part' only if it came from url (see PART_ORIGIN)."""
  part, origin_file = dest + ".part", dest + PART_ORIGIN
  origin = _partial_origin(dest)
  if os.path.exists(part) and origin != url and not (origin is None and trust_unknown):
    os.remove(part)
  os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
  with open(origin_file, "w") as f:
    f.write(url + "\n")
  try:
    return fetch(url, dest, **kwargs)
  finally:
    if not os.path.exists(part) and os.path.exists(origin_file):
      os.remove(origin_file)


def fetch_first(sources, name, dest, **kwargs):
  """fetch() base + name from the first of sources that delivers it good.  Returns (url, sha256).

  A source that is unreachable, answers an HTTP error, keeps breaking off or
  serves a file that fails its checks (the published MD5 decides) is passed
  over with one line and the next tried; when none delivers, one sentence names
  them all.  A single source (--mirror) raises its own error, as before.
  """
  if len(sources) == 1:
    return sources[0] + name, _fetch_from(sources[0] + name, dest, True, **kwargs)
  origin = _partial_origin(dest)
  order = sorted(sources, key=lambda base: base + name != origin)  # stable: the partial's first
  failures = []
  for i, base in enumerate(order):
    try:
      return base + name, _fetch_from(base + name, dest, False, **kwargs)
    except SourceError as err:
      failures.append("%s (%s)" % (base + name, err.reason))
      if i + 1 < len(order):
        print(" [!] %s: %s; trying the next mirror" % (base + name, err.reason))
  raise UserError("Could not download %s from any of its sources: %s; %s."
                  % (name, ", ".join(failures), mirror_hint()))


# ----------------------------------------------------------------------------
# archives


def validate_zip(path):
  try:
    with zipfile.ZipFile(path) as zf:
      broken = zf.testzip()
  except (zipfile.BadZipFile, OSError, EOFError) as err:
    raise UserError("not a readable zip archive: %s" % err)
  if broken is not None:
    raise UserError("the archive member %s fails its CRC check" % broken)


def safe_members(zf, target):
  """The archive's members, refusing any that would land outside target."""
  root = os.path.realpath(target)
  members = []
  for info in zf.infolist():
    name = info.filename.replace("\\", "/")
    parts = name.split("/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in parts:
      raise UserError("The archive %s holds an entry that would be written outside %s (%r); "
                      "nothing was extracted." % (zf.filename, target, info.filename))
    destination = os.path.realpath(os.path.join(root, posixpath.normpath(name)))
    if destination != root and not destination.startswith(root + os.sep):
      raise UserError("The archive %s holds an entry that would be written outside %s (%r); "
                      "nothing was extracted." % (zf.filename, target, info.filename))
    members.append(info)
  return members


@contextlib.contextmanager
def staged(target):
  """A temporary folder beside target to extract into: when the block ends, what it holds moves
  into target (made if absent); on an error it is removed.  Nothing appears under target's name
  until every member is out."""
  parent = os.path.dirname(os.path.abspath(target))
  staging = tempfile.mkdtemp(prefix="." + os.path.basename(target) + ".partial-", dir=parent)
  try:
    yield staging
    if os.path.isdir(target):
      for name in os.listdir(staging):
        os.replace(os.path.join(staging, name), os.path.join(target, name))
      os.rmdir(staging)
    else:
      os.replace(staging, target)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise


def extract_zip(zip_path, target, strip_prefix=""):
  """Extract into a temporary folder beside target, then move it into target (staged).

  strip_prefix ('img_align_celeba/') is removed from member names so the files
  land directly in target.
  """
  with staged(target) as staging, zipfile.ZipFile(zip_path) as zf:
    members = safe_members(zf, staging)
    for info in tqdm(members, desc="extracting " + os.path.basename(zip_path), unit="file",
                     leave=False, disable=None):
      name = info.filename.replace("\\", "/")
      if strip_prefix and name.startswith(strip_prefix):
        name = name[len(strip_prefix):]
      if not name or name.endswith("/"):
        continue
      out = os.path.join(staging, name)
      os.makedirs(os.path.dirname(out), exist_ok=True)
      with zf.open(info) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, CHUNK)


def complete(folder):
  return os.path.exists(os.path.join(folder, MARKER))


def mark_complete(folder, info):
  info = dict(info, completed=time.strftime("%Y-%m-%d %H:%M:%S"))
  write_json_atomic(os.path.join(folder, MARKER), info)


# ----------------------------------------------------------------------------
# datasets


def idx_download(dataset):
  """(its name in messages, the sources tried in turn, its files) of an IDX dataset."""
  if dataset == "fashion_mnist":
    return "Fashion-MNIST", FASHION_MNIST_SOURCES, FASHION_MNIST_FILES
  return "MNIST", MNIST_SOURCES, MNIST_FILES


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


def validate_tar(path):
  """Read a .tar.gz through (its gzip CRC, every header); a UserError for one that is not."""
  try:
    with tarfile.open(path, "r:gz") as archive:
      for member in archive:
        if member.isfile():
          archive.extractfile(member).read()
  except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
    raise UserError("not a readable tar.gz archive: %s" % err)


def extract_tar(tar_path, target, strip_prefix):
  """The archive's files under strip_prefix, extracted into a temporary folder beside target and
  moved into it (staged); tarfile's 'data' filter refuses any member that would land outside
  it, or a link, device or other special file."""
  try:
    with staged(target) as staging, tarfile.open(tar_path, "r:gz") as archive:
      members = []
      for member in archive.getmembers():
        if member.name.startswith(strip_prefix) and member.name != strip_prefix.rstrip("/"):
          members.append(member.replace(name=member.name[len(strip_prefix):]))
        elif not member.isdir():
          members.append(member)
      archive.extractall(staging, members=members, filter="data")
  except tarfile.FilterError as err:
    raise UserError("The archive %s holds an entry that would be written outside %s (%s); "
                    "nothing was extracted." % (tar_path, target, err))


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
  folder = os.path.join(data_dir, "celebA")
  if complete(folder):
    print("Found Celeb-A - skip")
    return folder
  zip_path = os.path.join(data_dir, CELEBA_ZIP)
  url = mirror + CELEBA_ZIP if mirror else CELEBA_SOURCE
  if not os.path.exists(zip_path):
    try:
      fetch(url, zip_path, expected_md5=CELEBA_MD5, official=not mirror, validate=validate_zip,
            record_dir=data_dir)
    except UserError as err:
      if not mirror and "not a readable zip" in str(err):
        raise UserError("Google Drive did not send %s (it sends a web page instead when its download "
                        "quota is used up); try later or use --mirror URL." % CELEBA_ZIP)
      raise
  extract_zip(zip_path, folder, strip_prefix="img_align_celeba/")
  count = len([f for f in os.listdir(folder) if f.lower().endswith(".jpg")])
  mark_complete(folder, {"dataset": "celebA", "images": count, "source": url})
  os.remove(zip_path)
  print(" [*] Celeb-A: %d images in %s" % (count, folder))
  return folder


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
