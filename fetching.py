"""Fetching one file over HTTP for download.py: resumable, verified, atomic.

fetch() streams a URL into '<dest>.part' with a progress bar, resumes it with an HTTP Range
request after an interruption (RETRIES times within one run, and in the next run), checks the
finished file (the published MD5, the sha256 recorded the last time that URL was fetched, a
validate function) and only then renames it; fetch_first() tries a dataset's mirrors in turn.
A source's failure is a SourceError (Unreachable when it could not be reached), one sentence.
"""
import hashlib
import http.client
import json
import os
import posixpath
import re
import socket
import time
import urllib.error
import urllib.request

from tqdm import tqdm

from utils import UserError, write_json_atomic

RECORD = ".dcgan_checksums.json"  # sha256 of every file downloaded, re-checked when fetched again

CHUNK = 1 << 16
RETRIES = 3


def mirror_hint():
  return "check the network, or fetch the files from another host with --mirror URL"


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
