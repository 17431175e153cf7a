"""download.py against a local HTTP server serving the real MNIST sample and built archives."""
import glob
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

import download
import fetching
from conftest import PROJECT_DIR
from dataset import ATTRIBUTE_FILE, MnistData, open_dataset
from http_server import FileServer, closed_port_url
from utils import UserError

SHARED_MNIST = os.path.join(os.path.dirname(PROJECT_DIR), "shared", "data", "mnist5k")
MNIST_DIR = SHARED_MNIST if os.path.isdir(SHARED_MNIST) else os.path.join(PROJECT_DIR, "data", "mnist5k")
MNIST_NAMES = [name for name, _, _ in download.idx_download("mnist")[2]]


def mnist_files():
  return {name: open(os.path.join(MNIST_DIR, name), "rb").read() for name in MNIST_NAMES}


def publish(monkeypatch, files):
  """Make files (name -> bytes) the published MNIST: MNIST_MD5S their MD5s."""
  monkeypatch.setattr(download, "MNIST_MD5S", tuple(
      hashlib.md5(files[name]).hexdigest() for name in MNIST_NAMES))


def use_sources(monkeypatch, *urls):
  """The official MNIST mirrors, tried in this order, are urls."""
  monkeypatch.setattr(download, "MNIST_SOURCES", urls)


def other_digits(data):
  """A well-formed IDX .gz like data whose last example differs: only the MD5 tells them apart."""
  raw = bytearray(gzip.decompress(data))
  raw[-1] ^= 0x01
  return gzip.compress(bytes(raw), compresslevel=1)


class AlwaysCut(dict):
  """FileServer.cut_after that cuts every response for a name, not only the next one."""

  def pop(self, key, default=None):
    return self.get(key, default)


def jpeg_bytes(seed, size=(178, 218)):
  rng = np.random.RandomState(seed)
  w, h = size
  pixels = np.clip(rng.normal(128, 40, (h, w, 3)), 0, 255).astype(np.uint8)
  out = io.BytesIO()
  Image.fromarray(pixels).save(out, "JPEG")
  return out.getvalue()


def zip_bytes(entries):
  out = io.BytesIO()
  with zipfile.ZipFile(out, "w") as zf:
    for name, data in entries.items():
      zf.writestr(name, data)
  return out.getvalue()


def run_download(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  return subprocess.run([sys.executable, os.path.join(PROJECT_DIR, "download.py")] + list(args),
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300, env=env)


def test_mnist_from_mirror_loads_and_reruns_as_a_no_op(tmp_path):
  data_dir = str(tmp_path / "data")
  with FileServer(mnist_files()) as server:
    proc = run_download("mnist", "--data_dir", data_dir, "--mirror", server.url)
    assert proc.returncode == 0, proc.stderr
    assert "differs from the official file" in proc.stdout  # the sample is not the full MNIST
    data = MnistData(data_dir)
    assert data.source == os.path.join(data_dir, "mnist") and len(data) == 5000
    for name in MNIST_NAMES:
      assert open(os.path.join(data_dir, "mnist", name), "rb").read() == server.files[name]
    assert os.path.exists(os.path.join(data_dir, "mnist", download.MARKER))
    assert not [f for f in os.listdir(os.path.join(data_dir, "mnist")) if f.endswith(".part")]
    requests = len(server.requests)
    assert download.main(["mnist", "--data_dir", data_dir, "--mirror", server.url]) == 0
    assert len(server.requests) == requests  # present: nothing fetched again


def test_a_mirror_without_its_slash_serves_every_file(tmp_path, capsys):
  with FileServer(mnist_files()) as server:
    mirror = server.url.rstrip("/")  # the slash is added
    assert download.main(["mnist", "--data_dir", str(tmp_path), "--mirror", mirror]) == 0
    assert {name for name, _ in server.requests} == set(MNIST_NAMES)


def test_broken_connection_resumes_with_range(tmp_path, capsys):
  with FileServer(mnist_files()) as server:
    server.cut_after["train-images-idx3-ubyte.gz"] = 100000
    assert download.main(["mnist", "--data_dir", str(tmp_path), "--mirror", server.url]) == 0
    ranges = [r for name, r in server.requests if name == "train-images-idx3-ubyte.gz"]
    assert ranges == [None, "bytes=100000-"]
    got = open(str(tmp_path / "mnist" / "train-images-idx3-ubyte.gz"), "rb").read()
    assert got == server.files["train-images-idx3-ubyte.gz"]
  assert "resuming from byte 100000" in capsys.readouterr().out


def test_partial_file_of_an_interrupted_run_is_resumed(tmp_path):
  files = mnist_files()
  folder = tmp_path / "mnist"
  folder.mkdir()
  (folder / "t10k-images-idx3-ubyte.gz.part").write_bytes(files["t10k-images-idx3-ubyte.gz"][:5000])
  with FileServer(files) as server:
    assert download.main(["mnist", "--data_dir", str(tmp_path), "--mirror", server.url]) == 0
    assert ("t10k-images-idx3-ubyte.gz", "bytes=5000-") in server.requests
  assert len(MnistData(str(tmp_path))) == 5000


def test_corrupted_file_is_rejected_and_nothing_looks_complete(tmp_path):
  files = mnist_files()
  bad = bytearray(files["train-labels-idx1-ubyte.gz"])
  bad[len(bad) // 2] ^= 0xFF
  files["train-labels-idx1-ubyte.gz"] = bytes(bad)
  with FileServer(files) as server:
    proc = run_download("mnist", "--data_dir", str(tmp_path), "--mirror", server.url)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert "train-labels-idx1-ubyte.gz" in proc.stderr and "corrupt" in proc.stderr
  folder = tmp_path / "mnist"
  assert not (folder / "train-labels-idx1-ubyte.gz").exists()
  assert not (folder / "train-labels-idx1-ubyte.gz.part").exists()
  assert not (folder / download.MARKER).exists()
  with pytest.raises(UserError, match="incomplete"):
    MnistData(str(tmp_path))


def test_mnist_passes_over_mirrors_that_are_down(tmp_path, monkeypatch, capsys):
  files = mnist_files()
  publish(monkeypatch, files)
  with FileServer({}) as empty, FileServer(files) as good:
    down = (closed_port_url(), empty.url)  # nothing listening; 404 for everything
    use_sources(monkeypatch, down[0], down[1], good.url)
    assert download.main(["mnist", "--data_dir", str(tmp_path)]) == 0
  skipped = [line for line in capsys.readouterr().out.splitlines() if line.startswith(" [!] ")]
  assert len(skipped) == 2 * len(MNIST_NAMES)
  for i, name in enumerate(MNIST_NAMES):
    assert (tmp_path / "mnist" / name).read_bytes() == files[name]
    first, second = skipped[2 * i:2 * i + 2]
    assert first.startswith(" [!] %s%s: " % (down[0], name))
    assert second.startswith(" [!] %s%s: HTTP 404" % (down[1], name))
    assert first.endswith("; trying the next mirror")
    assert second.endswith("; trying the next mirror")
  assert len(MnistData(str(tmp_path))) == 5000


def test_mnist_passes_over_a_mirror_serving_a_file_with_the_wrong_md5(tmp_path, monkeypatch,
                                                                      capsys):
  files = mnist_files()
  publish(monkeypatch, files)
  name = "train-labels-idx1-ubyte.gz"
  with FileServer(dict(files, **{name: other_digits(files[name])})) as wrong, \
       FileServer(files) as right:
    use_sources(monkeypatch, wrong.url, right.url)
    assert download.main(["mnist", "--data_dir", str(tmp_path)]) == 0
    assert [n for n, _ in right.requests] == [name]  # the other three came from the first
  assert " [!] %s%s: MD5 " % (wrong.url, name) in capsys.readouterr().out
  folder = tmp_path / "mnist"
  for n in MNIST_NAMES:
    assert (folder / n).read_bytes() == files[n]
  assert sorted(os.listdir(str(folder))) == sorted(MNIST_NAMES + [download.MARKER])
  marker = json.loads((folder / download.MARKER).read_text())
  assert marker["files"][name]["url"] == right.url + name


def test_mnist_every_source_failing_is_one_sentence_naming_them(tmp_path, monkeypatch, capsys):
  files = mnist_files()
  publish(monkeypatch, files)
  name = "train-images-idx3-ubyte.gz"
  with FileServer({}) as empty, FileServer({name: other_digits(files[name])}) as wrong:
    sources = (closed_port_url(), empty.url, wrong.url)
    use_sources(monkeypatch, *sources)
    assert download.main(["mnist", "--data_dir", str(tmp_path)]) == 1
  lines = capsys.readouterr().err.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: Could not download %s from any" % name)
  assert all(base + name in lines[0] for base in sources)
  assert "HTTP 404" in lines[0] and "MD5" in lines[0] and "--mirror" in lines[0]
  assert "Traceback" not in lines[0]
  assert os.listdir(str(tmp_path / "mnist")) == []  # nothing for the loader, no .part, no marker


def test_mnist_partial_of_a_mirror_that_keeps_breaking_off_is_not_resumed_from_the_next(
    tmp_path, monkeypatch, capsys):
  files = mnist_files()
  publish(monkeypatch, files)
  name = "train-images-idx3-ubyte.gz"
  with FileServer(dict(files, **{name: other_digits(files[name])})) as flaky, \
       FileServer(files) as steady:
    flaky.cut_after = AlwaysCut({name: 50000})
    monkeypatch.setattr(fetching, "RETRIES", 1)
    use_sources(monkeypatch, flaky.url, steady.url)
    assert download.main(["mnist", "--data_dir", str(tmp_path)]) == 0
    assert [r for n, r in steady.requests if n == name] == [None]  # from byte 0
  assert " [!] %s%s: stopped after 100000 bytes" % (flaky.url, name) in capsys.readouterr().out
  assert (tmp_path / "mnist" / name).read_bytes() == files[name]


def test_mnist_interrupted_partial_is_resumed_from_the_mirror_it_came_from(tmp_path, monkeypatch):
  files = mnist_files()
  publish(monkeypatch, files)
  name = "train-images-idx3-ubyte.gz"
  with FileServer(files) as flaky, FileServer(files) as other:
    flaky.cut_after = AlwaysCut({name: 50000})
    monkeypatch.setattr(fetching, "RETRIES", 1)
    use_sources(monkeypatch, closed_port_url(), flaky.url)
    assert download.main(["mnist", "--data_dir", str(tmp_path)]) == 1  # 100000 bytes kept
    flaky.cut_after = {}
    use_sources(monkeypatch, other.url, flaky.url)
    assert download.main(["mnist", "--data_dir", str(tmp_path)]) == 0
    assert [n for n, _ in other.requests] == MNIST_NAMES[1:]
    assert [r for n, r in flaky.requests if n == name][-1] == "bytes=100000-"
  assert (tmp_path / "mnist" / name).read_bytes() == files[name]


def test_mnist_partial_of_unknown_origin_is_not_resumed_from_several_mirrors(tmp_path, monkeypatch):
  files = mnist_files()
  publish(monkeypatch, files)
  name = "t10k-images-idx3-ubyte.gz"
  (tmp_path / "mnist").mkdir()
  (tmp_path / "mnist" / (name + ".part")).write_bytes(b"from who knows where" * 100)
  with FileServer(files) as first, FileServer(files) as second:
    use_sources(monkeypatch, first.url, second.url)
    assert download.main(["mnist", "--data_dir", str(tmp_path)]) == 0
    assert first.requests == [(n, None) for n in MNIST_NAMES] and second.requests == []
  assert (tmp_path / "mnist" / name).read_bytes() == files[name]


def test_published_md5_mismatch_from_the_official_source_is_rejected(tmp_path):
  with FileServer({"f.bin": b"not the real file"}) as server:
    with pytest.raises(UserError, match="MD5 .* the published one"):
      fetching.fetch(server.url + "f.bin", str(tmp_path / "f.bin"), expected_md5="0" * 32,
                     official=True)
  assert os.listdir(str(tmp_path)) == []


def test_recorded_checksum_is_rechecked(tmp_path):
  with FileServer({"f.bin": b"first version"}) as server:
    dest = str(tmp_path / "f.bin")
    fetching.fetch(server.url + "f.bin", dest, record_dir=str(tmp_path))
    os.remove(dest)
    server.files["f.bin"] = b"other bytes!!"
    with pytest.raises(UserError, match="does not match the sha256 recorded"):
      fetching.fetch(server.url + "f.bin", dest, record_dir=str(tmp_path))
  assert not os.path.exists(dest)


def test_offline_and_404_are_one_sentence(tmp_path):
  proc = run_download("mnist", "--data_dir", str(tmp_path), "--mirror", closed_port_url())
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: Could not download http://127.0.0.1:")
  assert "train-images-idx3-ubyte.gz" in lines[0] and "--mirror" in lines[0]
  with FileServer({}) as server:
    proc = run_download("celebA", "--data_dir", str(tmp_path), "--mirror", server.url)
  assert proc.returncode == 1 and "HTTP 404" in proc.stderr and "img_align_celeba.zip" in proc.stderr
  assert not (tmp_path / "celebA").exists()


@pytest.mark.parametrize("dataset", ["mnist", "celebA", "lsun"])
def test_a_failing_mirror_is_named_and_not_advised(tmp_path, capsys, dataset):
  name = {"mnist": MNIST_NAMES[0], "celebA": download.CELEBA_ZIP,
          "lsun": "bedroom_train_lmdb.zip"}[dataset]
  with FileServer({}) as server:  # up, but serving none of the files: 404
    assert download.main([dataset, "--data_dir", str(tmp_path), "--mirror", server.url]) == 1
  lines = capsys.readouterr().err.strip().splitlines()
  assert len(lines) == 1
  assert lines[0] == (
      "error: Could not download %s%s (HTTP 404 Not Found): the mirror %s given with --mirror "
      "failed; check that it is up and serves %s at that address, or leave out --mirror to "
      "download from the official sources." % (server.url, name, server.url, name))


def test_an_unreachable_mirror_without_its_slash_is_named(tmp_path, capsys):
  url = closed_port_url().rstrip("/")
  assert download.main(["mnist", "--data_dir", str(tmp_path), "--mirror", url]) == 1
  err = capsys.readouterr().err
  assert "): the mirror %s/ given with --mirror failed; check that it is up" % url in err
  assert "with --mirror URL" not in err and "Traceback" not in err


def attribute_file(count, names=("Smiling", "Male")):
  """A list_attr_celeba.txt for images 000001.jpg...: each attribute alternately present."""
  lines = [str(count), " ".join(names)]
  lines += ["%06d.jpg %s" % (i, " ".join("1" if (i + k) % 2 else "-1" for k in range(len(names))))
            for i in range(1, count + 1)]
  return ("\n".join(lines) + "\n").encode()


def test_celeba_zip_lands_flat_and_trains(tmp_path):
  entries = {"img_align_celeba/": b""}
  entries.update({"img_align_celeba/%06d.jpg" % i: jpeg_bytes(i) for i in range(1, 9)})
  with FileServer({download.CELEBA_ZIP: zip_bytes(entries),
                   ATTRIBUTE_FILE: attribute_file(8)}) as server:
    assert download.main(["celebA", "--data_dir", str(tmp_path), "--mirror", server.url]) == 0
  names = sorted(os.listdir(str(tmp_path / "celebA")))
  assert names == [download.MARKER] + ["%06d.jpg" % i for i in range(1, 9)] + [ATTRIBUTE_FILE]
  assert not (tmp_path / download.CELEBA_ZIP).exists()
  data = open_dataset("celebA", str(tmp_path), "*.jpg", 108, None, 64, None, crop=True)
  assert len(data) == 8 and data.get([0, 1])[0].shape == (2, 64, 64, 3)
  data = open_dataset("celebA", str(tmp_path), "*.jpg", 108, None, 64, None, crop=True,
                      attributes="Male")
  assert data.label_names == ["Male"] and data.get([0, 1])[1].tolist() == [[0.0], [1.0]]


def test_celeba_images_from_before_get_their_attribute_file_checked(tmp_path, monkeypatch, capsys):
  folder = tmp_path / "celebA"
  folder.mkdir()
  (folder / download.MARKER).write_text("{}")  # the images, downloaded before the attributes were
  broken = attribute_file(4).replace(b"000002.jpg -1 1", b"000002.jpg -1 yes")
  with FileServer({ATTRIBUTE_FILE: broken}) as server:
    monkeypatch.setattr(download, "CELEBA_ATTRIBUTES_SOURCE", server.url + ATTRIBUTE_FILE)
    monkeypatch.setattr(download, "CELEBA_ATTRIBUTES_MD5", hashlib.md5(broken).hexdigest())
    assert download.main(["celebA", "--data_dir", str(tmp_path)]) == 1
  err = capsys.readouterr().err
  assert "line 4: expected a file name and 2 values of 1 or -1" in err and "deleted" in err
  assert sorted(os.listdir(str(folder))) == [download.MARKER]  # nothing half-written kept
  good = attribute_file(4)
  with FileServer({ATTRIBUTE_FILE: good}) as server:
    monkeypatch.setattr(download, "CELEBA_ATTRIBUTES_SOURCE", server.url + ATTRIBUTE_FILE)
    monkeypatch.setattr(download, "CELEBA_ATTRIBUTES_MD5", hashlib.md5(good).hexdigest())
    assert download.main(["celebA", "--data_dir", str(tmp_path)]) == 0
  assert "Found Celeb-A - skip" in capsys.readouterr().out
  assert (folder / ATTRIBUTE_FILE).read_bytes() == good


@pytest.mark.parametrize("evil", ["../evil.jpg", "img_align_celeba/../../evil.jpg", "/tmp/evil.jpg"])
def test_archive_entries_outside_the_target_are_refused(tmp_path, evil):
  data_dir = tmp_path / "data"
  entries = {"img_align_celeba/000001.jpg": jpeg_bytes(1), evil: b"gotcha"}
  with FileServer({download.CELEBA_ZIP: zip_bytes(entries)}) as server:
    proc = run_download("celebA", "--data_dir", str(data_dir), "--mirror", server.url)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert "outside" in proc.stderr and "nothing was extracted" in proc.stderr
  assert not (data_dir / "celebA").exists()
  leftovers = [os.path.join(root, f) for root, _, fs in os.walk(str(tmp_path)) for f in fs]
  assert not [f for f in leftovers if f.endswith("evil.jpg")]
  assert not os.path.exists("/tmp/evil.jpg")
  assert not [d for d in os.listdir(str(data_dir)) if ".partial-" in d]


def test_lsun_lmdb_becomes_an_image_folder(tmp_path):
  lmdb = pytest.importorskip("lmdb")
  db_dir = tmp_path / "build" / "bedroom_train_lmdb"
  db_dir.mkdir(parents=True)
  images = {}
  for i in range(5):
    out = io.BytesIO()
    Image.fromarray(np.full((40, 60, 3), 40 * i, np.uint8)).save(out, "WEBP")
    images[("%040x" % (i * 7919)).encode()] = out.getvalue()
  env = lmdb.open(str(db_dir), map_size=1 << 24)
  with env.begin(write=True) as txn:
    for key, value in images.items():
      txn.put(key, value)
  env.close()
  archive = zip_bytes({"bedroom_train_lmdb/" + name: open(str(db_dir / name), "rb").read()
                       for name in os.listdir(str(db_dir))})
  data_dir = tmp_path / "data"
  with FileServer({"bedroom_train_lmdb.zip": archive}) as server:
    proc = run_download("lsun", "--data_dir", str(data_dir), "--mirror", server.url)
  assert proc.returncode == 0, proc.stderr
  assert "--input_fname_pattern '*.webp'" in proc.stdout
  written = sorted(f for f in os.listdir(str(data_dir / "lsun")) if f.endswith(".webp"))
  assert len(written) == 5
  data = open_dataset("lsun", str(data_dir), "*.webp", 40, None, 16, None, crop=True)
  assert len(data) == 5 and data.get([0, 4])[0].shape == (2, 16, 16, 3)


@pytest.mark.parametrize("served", ["truncated", "wrong"])
def test_a_truncated_or_wrong_archive_leaves_nothing_where_the_loader_reads(tmp_path, monkeypatch,
                                                                            capsys, served):
  entries = {"img_align_celeba/%06d.jpg" % i: jpeg_bytes(i) for i in range(1, 5)}
  archive = zip_bytes(entries)
  data_dir = tmp_path / "data"
  with FileServer({download.CELEBA_ZIP: archive[:len(archive) // 2] if served == "truncated"
                   else archive}) as server:
    # from the official source (here on 127.0.0.1): the published MD5 decides; a truncated
    # archive fails it too, and the zip check besides
    monkeypatch.setattr(download, "CELEBA_SOURCE", server.url + download.CELEBA_ZIP)
    assert download.main(["celebA", "--data_dir", str(data_dir)]) == 1
  err = capsys.readouterr().err
  assert "img_align_celeba.zip" in err and "it was deleted" in err and "Traceback" not in err
  left = sorted(os.path.relpath(os.path.join(root, f), str(data_dir))
                for root, _, files in os.walk(str(data_dir)) for f in files)
  assert left == []  # no zip, no .part, no celebA folder for the loader to find
  with pytest.raises(UserError):
    open_dataset("celebA", str(data_dir), "*.jpg", 108, None, 64, None, crop=True)


def test_fashion_mnist_lands_beside_mnist_and_trains_as_its_ten_classes(tmp_path, monkeypatch):
  """download.py fashion_mnist: the same four IDX names, their own folder, published MD5s (here
  the made-up files' own, from the test's server as the official host), resumable as MNIST's."""
  from test_results import write_fashion
  write_fashion(str(tmp_path / "made"))
  files = {name: open(str(tmp_path / "made" / name), "rb").read()
           for name in os.listdir(str(tmp_path / "made"))}
  monkeypatch.setattr(download, "FASHION_MNIST_MD5S", tuple(
      hashlib.md5(files[name]).hexdigest() for name in MNIST_NAMES))  # (the same four names)
  data_dir = str(tmp_path / "data")
  with FileServer(files) as server:
    monkeypatch.setattr(download, "FASHION_MNIST_SOURCES", (closed_port_url(), server.url))
    assert download.main(["fashion_mnist", "--data_dir", data_dir]) == 0
    assert sorted(os.listdir(os.path.join(data_dir, "fashion_mnist"))) == sorted(
        [download.MARKER] + list(files))
    requests = len(server.requests)
    assert download.main(["fashion_mnist", "--data_dir", data_dir]) == 0
    assert len(server.requests) == requests  # present: nothing fetched again
  data = open_dataset("fashion_mnist", data_dir, "*.jpg", 28, None, 28, None, False)
  assert len(data) == 160 and data.y_dim == 10 and data.label_names[0] == "T-shirt/top"
  assert data.description["kind"] == "fashion_mnist"
  assert not os.path.exists(os.path.join(data_dir, "mnist"))


def tar_gz_bytes(folder, prefix):
  out = io.BytesIO()
  with tarfile.open(fileobj=out, mode="w:gz") as archive:
    archive.add(folder, arcname=prefix)
  return out.getvalue()


def test_cifar10_tarball_lands_as_its_batches_and_an_escaping_entry_is_refused(tmp_path):
  from test_dataset import write_cifar
  write_cifar(str(tmp_path / "made"))
  data_dir = str(tmp_path / "data")
  with FileServer({download.CIFAR10_TAR: tar_gz_bytes(str(tmp_path / "made"),
                                                      "cifar-10-batches-py")}) as server:
    proc = run_download("cifar10", "--data_dir", data_dir, "--mirror", server.url)
    assert proc.returncode == 0, proc.stderr
    assert "CIFAR-10: 72 images of 10 classes in" in proc.stdout
    assert sorted(os.listdir(os.path.join(data_dir, "cifar10"))) == sorted(
        [download.MARKER, "batches.meta", "test_batch"] + ["data_batch_%d" % i for i in range(1, 6)])
    assert not os.path.exists(os.path.join(data_dir, download.CIFAR10_TAR))
    requests = len(server.requests)
    assert download.main(["cifar10", "--data_dir", data_dir, "--mirror", server.url]) == 0
    assert len(server.requests) == requests
  evil = io.BytesIO()
  with tarfile.open(fileobj=evil, mode="w:gz") as archive:
    entry = tarfile.TarInfo("cifar-10-batches-py/../../escaped")
    entry.size = 2
    archive.addfile(entry, io.BytesIO(b"hi"))
  other = str(tmp_path / "other")
  with FileServer({download.CIFAR10_TAR: evil.getvalue()}) as server:
    proc = run_download("cifar10", "--data_dir", other, "--mirror", server.url)
  assert proc.returncode == 1 and "would be written outside" in proc.stderr, proc.stderr
  assert not os.path.exists(os.path.join(other, "cifar10")) and not glob.glob(
      str(tmp_path / "**" / "escaped"), recursive=True)
