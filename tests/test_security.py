"""Trust boundaries (README, "Security"): files from elsewhere and a full disk.

A graph read from disk (a .meta, a frozen .pb, a SavedModel) is a program; a checkpoint read into
the project's own graph only supplies numbers. No code path of the project reads a graph.
"""
import ast
import glob
import json
import os
import resource
import shlex
import struct
import subprocess
import sys
import zlib

import tensorflow.compat.v1 as tf

from conftest import PROJECT_DIR, write_images
from test_main import MAIN

# What would load a graph definition, or a SavedModel (a graph and its functions), from a file.
GRAPH_READERS = {"import_meta_graph", "import_graph_def", "ParseFromString", "MetaGraphDef",
                 "GraphDef", "load_model", "loader"}


def project_sources():
  """The project's own Python files: every one but the tests (bench/ included)."""
  return sorted(glob.glob(os.path.join(PROJECT_DIR, "*.py"))
                + glob.glob(os.path.join(PROJECT_DIR, "bench", "*.py")))


def graph_readers(path):
  """[(line, name)] of the names in GRAPH_READERS a file uses, and of saved_model.load calls."""
  found = []
  for node in ast.walk(ast.parse(open(path).read(), path)):
    name = (node.attr if isinstance(node, ast.Attribute) else
            node.id if isinstance(node, ast.Name) else None)
    if name in GRAPH_READERS:
      found.append((node.lineno, name))
    if (isinstance(node, ast.Attribute) and node.attr == "load"
        and isinstance(node.value, ast.Attribute) and node.value.attr == "saved_model"):
      found.append((node.lineno, "saved_model.load"))
  return found


# The one exception: convert.py loads the SavedModel that export.py wrote moments before in the
# same command (--tflite, --onnx), to convert it.
READS_ITS_OWN_EXPORT = {"convert.py": ["saved_model.load"]}


def test_no_code_path_reads_a_graph_from_disk():
  sources = project_sources()
  assert os.path.join(PROJECT_DIR, "main.py") in sources and len(sources) > 15
  found = {os.path.relpath(p, PROJECT_DIR): graph_readers(p) for p in sources}
  assert {path: [name for _, name in names]
          for path, names in found.items() if names} == READS_ITS_OWN_EXPORT


def test_the_scan_finds_a_graph_reader_where_there_is_one(tmp_path):
  planted = tmp_path / "planted.py"
  planted.write_text("import tensorflow.compat.v1 as tf\n"
                     "saver = tf.train.import_meta_graph('model.meta')\n"
                     "model = tf.saved_model.load('elsewhere')\n")
  assert graph_readers(str(planted)) == [(2, "import_meta_graph"), (3, "saved_model.load")]


# --------------------------------------------------------------------------------------------
# images from elsewhere: a decompression bomb


def png_bomb(path, side=20000):
  """A small PNG declaring side x side 1-bit pixels, all zeros (written row by row: the test
  never holds the image)."""
  def chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
  squeeze = zlib.compressobj(9)
  row = b"\x00" * (1 + (side + 7) // 8)  # filter byte, then the packed bits
  body = b"".join(squeeze.compress(row) for _ in range(side)) + squeeze.flush()
  with open(path, "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))
  return os.path.getsize(path)


# Runs main.py as its own child, then reports that child's peak resident memory (kB), so what
# the test process or other tests' children used does not count.
PEAK_OF_CHILD = r'''
import json, resource, subprocess, sys
proc = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
print(json.dumps({"rc": proc.returncode, "out": proc.stdout, "err": proc.stderr,
                  "peak_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
'''


def test_a_decompression_bomb_in_a_training_folder_is_skipped_and_counted(tmp_path):
  folder = tmp_path / "data" / "faces"
  # 7 images and the bomb: the epoch's 2 batches of 4 take all 8 files, the bomb among them
  # whatever the order (9 files left one out, the bomb one time in nine)
  write_images(str(folder), 7, size=(40, 40))
  size = png_bomb(str(folder / "img_bomb.png"))
  assert size < 100000  # some 50 kB declaring 400 million pixels
  proc = subprocess.run(
      [sys.executable, "-c", PEAK_OF_CHILD, sys.executable, MAIN, "--dataset", "faces",
       "--input_fname_pattern", "*.*", "--input_height", "32", "--crop", "--output_height", "16",
       "--batch_size", "4", "--epoch", "1", "--train"],
      cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  report = json.loads(proc.stdout.strip().splitlines()[-1])
  assert report["rc"] == 0 and "Traceback" not in report["err"], report["err"][-3000:]
  assert "Trained to counter" in report["out"]
  said = report["out"] + report["err"]
  assert ("warning: skipping unreadable image ./data/faces/img_bomb.png (Image size (400000000 "
          "pixels) exceeds limit") in said, said[-3000:]
  assert " [!] 1 unreadable file(s) skipped: img_bomb.png" in report["out"]  # the run's report
  assert report["peak_kb"] < 2 * 1024 * 1024, report["peak_kb"]  # under 2 GiB


# --------------------------------------------------------------------------------------------
# a full disk: a child whose files may not grow past a limit fails its writes as a full disk
# does (EFBIG instead of ENOSPC), without root


def run_limited(cwd, args, max_file_bytes=None):
  def limit():
    if max_file_bytes is not None:
      resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))
  return subprocess.run([sys.executable, MAIN] + list(args), cwd=str(cwd), preexec_fn=limit,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


def test_a_checkpoint_that_does_not_fit_names_the_cause_leaves_nothing_and_resumes(tmp_path):
  args = ["--dataset", "mnist", "--input_height", "28", "--output_height", "16", "--train",
          "--train_size", "160", "--batch_size", "32", "--out_name", "run"]
  first = run_limited(tmp_path, args + ["--epoch", "1"])
  assert first.returncode == 0, first.stderr[-3000:]
  ckpt_dir = tmp_path / "out" / "run" / "checkpoint"
  assert os.path.basename(tf.train.latest_checkpoint(str(ckpt_dir))) == "model.b32-6"
  data_file = ckpt_dir / "model.b32-6.data-00000-of-00001"
  before = sorted(os.listdir(str(ckpt_dir)))

  # the next checkpoint cannot be written: files may not grow past a quarter of one
  full = run_limited(tmp_path, args + ["--epoch", "2"], os.path.getsize(str(data_file)) // 4)
  assert full.returncode == 1 and "Traceback" not in full.stderr, full.stderr[-3000:]
  (line,) = [l for l in full.stderr.splitlines() if l.startswith("error: ")]
  assert "Could not write the checkpoint for step 11" in line, line
  needed = "%.0f MB" % (os.path.getsize(str(data_file)) / 1e6)  # what the last one took
  assert "(File too large; it needs about %s free there, one checkpoint's size)" % needed in line
  assert "previous checkpoint (./out/run/checkpoint/model.b32-6) is untouched" in line, line
  assert "Graph execution error" not in line
  assert sorted(os.listdir(str(ckpt_dir))) == before  # no .tempstate or half a checkpoint
  # the previous checkpoint restores, and the printed command resumes once there is space
  (resume,) = [l for l in full.stderr.splitlines() if l.startswith("To resume")]
  words = shlex.split(resume.split(": ", 1)[1])
  assert words[1] == MAIN and sorted(words[2:]) == sorted(args + ["--epoch", "2"]), words
  again = subprocess.run(words, cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, timeout=600, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert again.returncode == 0, again.stderr[-3000:]
  assert "Load SUCCESS: resuming at counter 6" in again.stdout
  assert os.path.basename(tf.train.latest_checkpoint(str(ckpt_dir))) == "model.b32-11"
