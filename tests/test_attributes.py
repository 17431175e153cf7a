"""Attributes as labels (--attributes): the attribute file, the folder it labels, a run that
learns each attribute (trained through main.py on images whose attributes are visible), sampling
by attributes, their evaluation, and the exports' multi-hot y in TensorFlow, ONNX Runtime and
LiteRT."""
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ATTRIBUTE_NAMES, write_attribute_folder
from dataset import AttributeFolderData, open_dataset, read_attribute_file
from test_export import (ATTRIBUTE_SNIPPETS, LITERT, assert_within_tolerance, for_run, probe,
                         reference_snippets, run_python_snippet, sampler_images,
                         saved_model_images, snippet_inputs)
from test_main import only_run_folder, run_main, run_main_here
from utils import UserError

SIZE = 16
MARGIN = 0.5  # an attribute asked for is found this much more often than when it is not asked


def attribute_folder(tmp_path, count=12):
  return write_attribute_folder(str(tmp_path / "data" / "shapes"), count, size=SIZE)


def open_shapes(tmp_path, attributes="all"):
  return open_dataset("shapes", str(tmp_path / "data"), "*.jpg", SIZE, None, SIZE, None, False,
                      attributes=attributes)


def test_the_attribute_file_labels_each_image_multi_hot(tmp_path, capsys):
  rows = attribute_folder(tmp_path)
  data = open_shapes(tmp_path, "Dark, Red")  # any order given: the file's order kept
  assert data.label_names == ["Red", "Dark"] and data.y_dim == 2
  images, labels = data.get([0, 5])
  assert images.shape == (2, SIZE, SIZE, 3) and 0 <= images.min() and images.max() <= 1
  want = [[rows[os.path.basename(data.files[i])][k] for k in (0, 2)] for i in (0, 5)]
  assert labels.tolist() == want
  assert data.description["kind"] == "attributes" and data.description["y"] == "multi_hot"
  assert np.allclose(data.description["frequency"], data.y_rows.mean(0), atol=1e-4)
  assert "do not match" not in capsys.readouterr().out  # the attribute file is not an image


@pytest.mark.parametrize("change,message", [
    (lambda lines: lines.__setitem__(0, "many"), "line 1: the first line should be the number"),
    (lambda lines: lines.__setitem__(1, "Red Red Dark"), "line 2: the second line should name"),
    (lambda lines: lines.__setitem__(4, lines[4] + " 1"), "line 5: expected a file name and 3"),
    (lambda lines: lines.__setitem__(6, lines[6].replace("-1", "no", 1).replace(" 1", " no", 1)),
     "line 7: expected a file name and 3 values of 1 or -1")])
def test_a_malformed_attribute_file_names_its_line(tmp_path, change, message):
  attribute_folder(tmp_path)
  path = str(tmp_path / "data" / "shapes" / "list_attr_celeba.txt")
  with open(path) as f:
    lines = f.read().splitlines()
  change(lines)
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
  with pytest.raises(UserError, match=message):
    read_attribute_file(path)
  with pytest.raises(UserError, match=message):
    open_shapes(tmp_path)


def test_images_and_rows_that_do_not_match_are_counted_and_named_once(tmp_path, capsys):
  attribute_folder(tmp_path, count=10)
  folder = tmp_path / "data" / "shapes"
  os.remove(str(folder / "000003.jpg"))  # listed, not there
  Image.new("RGB", (SIZE, SIZE)).save(str(folder / "extra.jpg"))  # there, not listed
  data = open_shapes(tmp_path)
  out = capsys.readouterr().out
  assert len(data) == 9 and "extra.jpg" not in [os.path.basename(f) for f in data.files]
  assert out.count("1 image of %s not listed in list_attr_celeba.txt left out (such as "
                   "extra.jpg)" % folder) == 1
  assert out.count("1 file listed in list_attr_celeba.txt not among the images (such as "
                   "000003.jpg)") == 1
  for name in os.listdir(str(folder)):
    if name.endswith(".jpg") and name != "extra.jpg":
      os.remove(str(folder / name))
  with pytest.raises(UserError, match="None of the 1 image in .* is listed in "
                                      "list_attr_celeba.txt \\(it lists such as 000001.jpg"):
    open_shapes(tmp_path)


@pytest.mark.parametrize("args,message", [
    (dict(attributes="Red,Blue"), "--attributes Red,Blue: .* has no attribute Blue \\(it has Red, "
                                  "Large, Dark\\)"),
    (dict(attributes="Red", labels=True), "--labels \\(class folders\\) and --attributes"),
    (dict(attributes="all", dataset="mnist"), "--attributes reads an image folder's own labels, "
                                              "and MNIST comes labelled")])
def test_attributes_that_cannot_be_read_are_one_sentence(tmp_path, args, message):
  attribute_folder(tmp_path)
  dataset = args.pop("dataset", "shapes")
  with pytest.raises(UserError, match=message):
    open_dataset(dataset, str(tmp_path / "data"), "*.jpg", SIZE, None, SIZE, None, False, **args)
  os.remove(str(tmp_path / "data" / "shapes" / "list_attr_celeba.txt"))
  with pytest.raises(UserError, match="--attributes reads list_attr_celeba.txt beside the images"):
    AttributeFolderData(str(tmp_path / "data"), "shapes", "*.jpg", SIZE, None, SIZE, None, False)


@pytest.fixture(scope="module")
def attribute_run(tmp_path_factory):
  """320 images of three visible attributes, trained 8 epochs through main.py, then evaluated
  and exported (--saved_model --tflite --onnx) by the same command."""
  cwd = tmp_path_factory.mktemp("attributes")
  write_attribute_folder(str(cwd / "data" / "shapes"), 320, size=SIZE)
  proc = run_main(cwd, "--dataset", "shapes", "--attributes", "all", "--input_height", str(SIZE),
                  "--output_height", str(SIZE), "--batch_size", "16", "--epoch", "8", "--z_dim",
                  "16", "--seed", "1", "--train", "--evaluate", "--evaluate_n", "50",
                  "--classifier_dir", str(cwd / "classifiers"), "--saved_model", "--tflite",
                  "--onnx")
  return cwd, only_run_folder(cwd), proc


def test_each_attribute_asked_for_is_found_far_more_often_than_without(attribute_run):
  cwd, run_dir, proc = attribute_run
  assert "conditional (3 attributes: Red, Large, Dark) DCGAN" in proc.stdout
  assert "found: asked" in proc.stdout and "judge on real" in proc.stdout
  with open(os.path.join(run_dir, "evaluation.json")) as f:
    found = json.load(f)["generated"]["per_attribute"]
  assert sorted(found) == sorted(ATTRIBUTE_NAMES)
  for name, rates in found.items():
    assert rates["real_accuracy"] >= 0.9, (name, rates)  # the judge reads real images
    assert rates["with"] - rates["without"] >= MARGIN, (name, rates)
  with open(os.path.join(run_dir, "FLAGS.json")) as f:
    flags = json.load(f)
  assert flags["attributes"] == "all" and flags["data"]["labels"] == list(ATTRIBUTE_NAMES)


def judged(cwd, images):
  """What the run's cached judge finds in images (uint8 [N, H, W, 3]): [N, attributes] of 1/0."""
  import evaluate
  data = open_dataset("shapes", str(cwd / "data"), "*.jpg", SIZE, None, SIZE, None, False,
                      attributes="all")
  judge = evaluate.Judge(str(cwd / "classifiers"), evaluate.folder_judge_splits(data, "shapes"))
  try:
    return judge.predict(images.astype(np.float32) / 255.0)[0]
  finally:
    judge.close()


def generated(cwd, monkeypatch, capsys, label, count=40):
  """(folder, images uint8 [count, H, W, 3]) of --generate count --label label in test mode."""
  code, out, err = run_main_here(cwd, monkeypatch, capsys, "--dataset", "shapes", "--generate",
                                 str(count), "--label", label, check=True)
  folder = out.split(" images in ")[1].splitlines()[0]  # (a run folder's name has spaces)
  names = sorted(glob.glob(os.path.join(folder, "0*.png")))
  assert len(names) == count and os.path.exists(os.path.join(folder, "attributes.png"))
  return folder, np.stack([np.asarray(Image.open(name)) for name in names])


def test_generate_by_each_attribute_and_its_absence(attribute_run, monkeypatch, capsys):
  cwd, run_dir, _ = attribute_run
  batches = []
  for name in ATTRIBUTE_NAMES:  # each asked for, then its absence; the others at their frequency
    folder, asked = generated(cwd, monkeypatch, capsys, name)
    batches += [asked, generated(cwd, monkeypatch, capsys, "-" + name)[1]]
  found = judged(cwd, np.concatenate(batches)).reshape(len(batches), 40, -1).mean(1)
  for a, name in enumerate(ATTRIBUTE_NAMES):
    assert found[2 * a, a] - found[2 * a + 1, a] >= MARGIN, (name, found)
  walk = np.asarray(Image.open(os.path.join(folder, "attributes.png")))
  assert walk.shape == (3 * SIZE, 8 * SIZE, 3)  # a row per attribute: 4 z, without and with
  code, out, err = run_main_here(cwd, monkeypatch, capsys, "--dataset", "shapes", "--generate",
                                 "4", "--label", "Red,Blue")
  assert code == 1 and err.strip().splitlines() == [
      "error: --label Red,Blue: this model has no attribute Blue (its attributes: Red, Large, "
      "Dark); name them joined by commas, '-' before one asks for its absence."]


def test_evaluating_against_other_attributes_is_refused(attribute_run, monkeypatch, capsys):
  cwd, run_dir, _ = attribute_run
  with open(os.path.join(run_dir, "evaluation.json")) as f:
    before = f.read()
  code, out, err = run_main_here(cwd, monkeypatch, capsys, "--dataset", "shapes", "--attributes",
                                 "Dark,Red", "--evaluate", "--classifier_dir",
                                 str(cwd / "classifiers"))
  assert code == 1 and err.strip().splitlines() == [
      "error: --evaluate's judge knows the attributes Red, Dark of 3-channel images, and this "
      "model takes Red, Large, Dark and makes 3-channel images; evaluate it on the data and "
      "--attributes it was trained on."]
  with open(os.path.join(run_dir, "evaluation.json")) as f:
    assert f.read() == before  # the run's own evaluation is kept


def test_a_resume_with_other_attributes_is_refused(attribute_run, monkeypatch, capsys):
  cwd, run_dir, _ = attribute_run
  code, out, err = run_main_here(cwd, monkeypatch, capsys, "--dataset", "shapes", "--attributes",
                                 "Red", "--input_height", str(SIZE), "--output_height", str(SIZE),
                                 "--batch_size", "16", "--z_dim", "16", "--train", "--epoch",
                                 "9", "--out_name", os.path.basename(run_dir))
  assert code == 1 and "This run was trained on the attributes Red, Large, Dark" in err
  assert "resume it with --attributes and the same attributes" in err


def test_exports_take_the_multi_hot_y_in_every_runtime(attribute_run, tmp_path):
  import onnxruntime
  _, run_dir, _ = attribute_run
  (version,) = glob.glob(os.path.join(run_dir, "saved_model", "*"))
  with open(os.path.join(version, "assets", "generator.json")) as f:
    description = json.load(f)
  assert description["multi_hot"] is True and description["labels"] == 3
  assert description["label_names"] == list(ATTRIBUTE_NAMES) and "multi-hot" in (
      description["inputs"]["y"])
  feed = probe(description, 12)
  assert feed["y"].dtype == np.float32 and feed["y"].shape == (12, 3)
  served = saved_model_images(version, feed)
  mine = sampler_images(run_dir, feed["z"], feed["y"], input_height=SIZE, output_height=SIZE,
                        output_width=SIZE, y_dim=3, c_dim=3, z_dim=16, batch_size=16,
                        dataset_name="shapes", label_names=list(ATTRIBUTE_NAMES),
                        multi_hot=True)
  counter = description["counter"]
  session = onnxruntime.InferenceSession(os.path.join(run_dir, "onnx", "model-%d.onnx" % counter),
                                         providers=["CPUExecutionProvider"])
  feeds = {"%s_%d" % (k, b): v for b in (1, 64) for k, v in probe(description, b).items()}
  np.savez(str(tmp_path / "request.npz"), **feeds)
  proc = subprocess.run([sys.executable, "-I", "-c", LITERT,
                         os.path.join(run_dir, "tflite", "model-%d.tflite" % counter),
                         str(tmp_path / "request.npz"), str(tmp_path / "answer.npz")],
                        cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  litert = np.load(str(tmp_path / "answer.npz"))
  assert_within_tolerance([(served, mine)])  # the SavedModel gives the sampler's pixels
  assert_within_tolerance([(session.run(["images"], feed)[0], served)] + [
      (litert["images_%d" % b], saved_model_images(version, probe(description, b)))
      for b in (1, 64)])
  other = saved_model_images(version, dict(feed, y=1 - feed["y"]))  # the same z, other y
  assert np.mean(np.abs(other.astype(int) - served) > 32) > 0.1


@pytest.mark.parametrize("name, kind", ATTRIBUTE_SNIPPETS)
def test_the_reference_snippets_feed_an_attribute_model(attribute_run, name, kind, tmp_path):
  _, run_dir, _ = attribute_run
  (version,) = glob.glob(os.path.join(run_dir, "saved_model", "*"))
  with open(os.path.join(version, "assets", "generator.json")) as f:
    description = json.load(f)
  _, code = reference_snippets()[(name, kind)]
  images, z, loaded = run_python_snippet(for_run(code, run_dir, description["counter"]), tmp_path)
  assert not loaded  # LiteRT and ONNX Runtime run without TensorFlow
  want = saved_model_images(version, snippet_inputs(description, z))
  assert images.shape == want.shape == (8, SIZE, SIZE, 3)
  assert_within_tolerance([(images, want)])
