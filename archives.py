"""Extracting downloaded archives for download.py: checked first, written beside the target and
moved into it only when every member is out (staged), never outside it."""
import contextlib
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
import zipfile
import zlib

from tqdm import tqdm

from utils import UserError




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
        shutil.copyfileobj(src, dst)


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
