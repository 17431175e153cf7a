"""Every way of looking at a trained model, from the command line, on the bundled MNIST."""
import glob
import gzip
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import write_images
from evaluate import frechet_distance, logistic_regression
from experiments import parse_arithmetic, slerp
from test_main import only_run_folder, run_main, run_main_here
from utils import UserError, gif_frame_ms

Z_DIM, BATCH = 6, 16


@pytest.fixture(scope="session")  # once: xdist may run other modules between its tests
def mnist_run(tmp_path_factory):
  cwd = tmp_path_factory.mktemp("results")
  proc = run_main(cwd, "--dataset", "mnist", "--input_height", "28", "--output_height", "28", "--train",
                  "--epoch", "1", "--train_size", "64", "--batch_size", str(BATCH), "--z_dim", str(Z_DIM),
                  "--sample_freq", "2", "--summary_freq", "1", "--seed", "3")
  return cwd, only_run_folder(cwd), proc


def gif_info(path):
  """(frame count as stored, total duration in ms, size): identical frames are merged by Pillow,
  their durations added, so the total duration counts every frame written."""
  with Image.open(path) as img:
    total = 0
    for i in range(img.n_frames):
      img.seek(i)
      total += img.info["duration"]
    return img.n_frames, total, img.size


def test_training_writes_progress_gif_and_loss_curves(mnist_run):
  _, run_dir, proc = mnist_run
  samples = os.path.join(run_dir, "samples")
  grids = sorted(glob.glob(os.path.join(samples, "train_*.png")))
  assert [os.path.basename(g) for g in grids] == ["train_00000002.png", "train_00000004.png",
                                                  "train_00000005.png"]
  frames, duration, size = gif_info(os.path.join(samples, "training_progress.gif"))
  assert size == (4 * 28, 4 * 28) and duration == 3 * gif_frame_ms(0.9, 3) == 900 and frames >= 1
  curves = Image.open(os.path.join(samples, "loss_curves.png"))
  assert curves.size == (800, 400)
  pixels = np.asarray(curves.convert("RGB")).reshape(-1, 3)
  assert ((pixels == (31, 119, 180)).all(1)).sum() > 50  # the d_loss line is drawn
  assert "loss_curves.png" in proc.stdout


@pytest.mark.parametrize("option", [0, 1, 2, 3, 4])
def test_visualize_options(mnist_run, option, monkeypatch, capsys):
  cwd, run_dir, _ = mnist_run
  samples = os.path.join(run_dir, "samples")
  before = set(os.listdir(samples))
  _, out, _ = run_main_here(cwd, monkeypatch, capsys, "--dataset", "mnist", "--visualize",
                            "--visualize_option", str(option), check=True)
  new = sorted(set(os.listdir(samples)) - before)
  if option == 0:
    (name,) = new
    assert name.startswith("test_") and Image.open(os.path.join(samples, name)).size == (112, 112)
  elif option == 1:
    assert new == sorted("test_arange_%d.png" % i for i in range(Z_DIM))
    assert Image.open(os.path.join(samples, new[0])).size == (112, 112)
    # one line for the listing, not a line per image
    wrote = [l for l in out.splitlines() if "wrote" in l.lower()]
    assert len(wrote) == 1 and wrote[0].startswith(" [*] wrote %d images to " % Z_DIM), wrote
    assert wrote[0].endswith(os.path.join("samples", ""))
  else:
    gifs = [n for n in os.listdir(samples) if n.startswith("test_gif_")]
    assert gifs and all(gif_info(os.path.join(samples, g))[1] == BATCH * gif_frame_ms(2, BATCH)
               for g in gifs if g[9].isdigit())
    if option >= 3:
      assert {"test_gif_%d.gif" % i for i in range(Z_DIM)} <= set(gifs)
    frames, duration, size = gif_info(os.path.join(samples, "test_gif_0.gif" if option >= 3 else
                                                   sorted(g for g in gifs if g[9].isdigit())[0]))
    assert size == (28, 28) and 1 <= frames <= BATCH
    if option == 4:
      frames, duration, size = gif_info(os.path.join(samples, "test_gif_merged.gif"))
      assert size == (3 * 28, 2 * 28)  # the 6 dimensions side by side, 2 x 3
      assert duration == 2 * BATCH * gif_frame_ms(8, 2 * BATCH)


def test_generate_per_label_and_all_labels(mnist_run, monkeypatch, capsys):
  cwd, run_dir, _ = mnist_run
  run_main_here(cwd, monkeypatch, capsys, "--dataset", "mnist", "--generate", "12", "--label", "3",
                check=True)
  run_main_here(cwd, monkeypatch, capsys, "--dataset", "mnist", "--generate", "20", check=True)
  folders = sorted(glob.glob(os.path.join(run_dir, "samples", "generated_*")))
  assert len(folders) == 2
  one = sorted(os.listdir(folders[0])) if len(os.listdir(folders[0])) == 13 else sorted(os.listdir(folders[1]))
  every = sorted(os.listdir(folders[1])) if one == sorted(os.listdir(folders[0])) else sorted(os.listdir(folders[0]))
  assert one[-1] == "grid.png" and all(n.endswith("_label3.png") for n in one[:-1]) and len(one) == 13
  labels = [int(n.split("label")[1][:-4]) for n in every if "label" in n]
  assert sorted(labels) == sorted(list(range(10)) * 2)
  image = Image.open(os.path.join(folders[0], one[0]))
  assert image.size == (28, 28) and image.mode == "L"
  code, _, err = run_main_here(cwd, monkeypatch, capsys, "--dataset", "mnist", "--generate", "5",
                               "--label", "12")
  assert code == 1 and "--label 12 names no class of this model" in err


def test_latent_walks_and_arithmetic(mnist_run, monkeypatch, capsys):
  cwd, run_dir, _ = mnist_run
  samples = os.path.join(run_dir, "samples")
  run_main_here(cwd, monkeypatch, capsys, "--dataset", "mnist", "--walk", "--walk_pairs", "3",
                "--walk_steps", "5", "--arithmetic", "label:3 - label:3 + label:8",
                "--arithmetic_pool", "30", check=True)
  for mode in ("linear", "spherical"):
    assert Image.open(os.path.join(samples, "walk_%s.png" % mode)).size == (5 * 28, 3 * 28)
    frames, duration, size = gif_info(os.path.join(samples, "walk_%s.gif" % mode))
    assert size == (3 * 28, 28) and duration == 8 * gif_frame_ms(0.15 * 8, 8)  # 5 steps out, 3 back
  pool = Image.open(os.path.join(samples, "arithmetic_pool.png"))
  assert pool.size[0] >= 6 * 28
  table = Image.open(os.path.join(samples, "arithmetic.png"))
  assert table.size == (9 * 28, 4 * 28)  # 3 terms + the result row; 1 result + 8 variations
  code, _, err = run_main_here(cwd, monkeypatch, capsys, "--dataset", "mnist", "--arithmetic",
                               "1,2 - 99")
  assert code == 1 and "outside the pool" in err and "Traceback" not in err


def test_evaluate_and_features_experiment(mnist_run, monkeypatch, capsys):
  cwd, run_dir, _ = mnist_run
  classifier_dir = os.path.join(str(cwd), "classifier")
  _, out, _ = run_main_here(cwd, monkeypatch, capsys, "--dataset", "mnist", "--evaluate",
                            "--evaluate_n", "20", "--classifier_dir", classifier_dir,
                            "--classifier_epochs", "2", "--features_experiment",
                            "--labels_per_class", "5", check=True)
  assert "Training the MNIST classifier once" in out
  assert "class-conditional accuracy" in out and "Frechet distance" in out
  result = json.load(open(os.path.join(run_dir, "evaluation.json")))
  g, r = result["generated"], result["real_reference"]
  assert g["n"] == 200 and g["per_label"] == 20 and len(g["per_class_accuracy"]) == 10
  assert 0 <= g["class_conditional_accuracy"] <= 1 and g["frechet_distance"] >= 0
  assert 0.8 < r["test_accuracy"] <= 1 and r["frechet_distance"] >= 0 and r["n_test"] == 1000
  assert result["counter"] == 5
  features = json.load(open(os.path.join(run_dir, "d_features.json")))
  assert features["labels_per_class"] == 5 and features["n_test"] == 1000
  assert features["discriminator_features"]["dimensions"] == 4 * 4 * 11 + 4 * 4 * 74
  assert features["raw_pixels"]["dimensions"] == 784
  for key in ("discriminator_features", "raw_pixels"):
    assert 0.1 < features[key]["test_accuracy"] <= 1
  _, again, _ = run_main_here(cwd, monkeypatch, capsys, "--dataset", "mnist", "--evaluate",
                              "--evaluate_n", "10", "--classifier_dir", classifier_dir,
                              "--classifier_epochs", "2", check=True)
  assert "MNIST classifier loaded from" in again


def test_image_folder_model_looks_without_labels(tmp_path, monkeypatch, capsys):
  write_images(str(tmp_path / "data" / "faces"), 8, size=(40, 40))
  run_main(tmp_path, "--dataset", "faces", "--input_height", "32", "--crop", "--output_height", "16",
           "--batch_size", "4", "--epoch", "1", "--z_dim", "4", "--train")
  samples = os.path.join(only_run_folder(tmp_path), "samples")
  _, out, _ = run_main_here(tmp_path, monkeypatch, capsys, "--dataset", "faces", "--visualize",
                            "--visualize_option", "4", "--generate", "3", "--walk",
                            "--walk_pairs", "2", "--walk_steps", "3", "--arithmetic",
                            "0,1 - 2 + 3", check=True)
  # each look says what it wrote: a few files by name, not lumped into one folder count
  assert "walk_linear.gif" in out and "arithmetic.png" in out
  assert gif_info(os.path.join(samples, "test_gif_merged.gif"))[2] == (2 * 16, 2 * 16)
  (folder,) = glob.glob(os.path.join(samples, "generated_*"))
  assert sorted(os.listdir(folder)) == ["000001.png", "000002.png", "000003.png", "grid.png"]
  assert Image.open(os.path.join(folder, "000001.png")).mode == "RGB"
  for args, message in ((["--evaluate"], "has no labels, so it cannot be measured here"),
                        (["--generate", "2", "--label", "1"], "needs a conditional"),
                        (["--arithmetic", "label:1 - label:2"], "needs a conditional")):
    code, _, err = run_main_here(tmp_path, monkeypatch, capsys, "--dataset", "faces", *args)
    assert code == 1 and message in err and "Traceback" not in err


def test_slerp_and_arithmetic_parsing():
  a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
  np.testing.assert_allclose(slerp(a, b, 0.0), a, atol=1e-12)
  np.testing.assert_allclose(slerp(a, b, 1.0), b, atol=1e-12)
  np.testing.assert_allclose(np.linalg.norm(slerp(a, b, 0.3)), 1.0)  # stays on the sphere
  np.testing.assert_allclose(slerp(a, 2 * a, 0.5), 1.5 * a)  # parallel: linear
  assert parse_arithmetic("1,2,3 - 4 + 5,6") == [(1.0, [1, 2, 3]), (-1.0, [4]), (1.0, [5, 6])]
  labels = np.arange(30) % 10
  assert parse_arithmetic("label:3 - label:7", labels) == [(1.0, [3, 13, 23]), (-1.0, [7, 17, 27])]
  with pytest.raises(UserError):
    parse_arithmetic("1,2")
  with pytest.raises(UserError):
    parse_arithmetic("a - b")


def test_frechet_distance_and_linear_classifier():
  rng = np.random.RandomState(0)
  x = rng.randn(2000, 4)
  assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
  # equal covariances: the distance is the squared distance of the means
  assert frechet_distance(x, x + [3.0, 0, 0, 0]) == pytest.approx(9.0, rel=1e-6)
  # N(0, I) vs N(0, 4I): tr(I + 4I - 2 * 2I) = 4 for 4 dimensions
  assert frechet_distance(rng.randn(20000, 4), 2 * rng.randn(20000, 4)) == pytest.approx(4.0, rel=0.05)
  labels = rng.randint(0, 3, 300)
  features = rng.randn(300, 5) + 4 * np.eye(3)[labels].dot(rng.randn(3, 5))
  predict = logistic_regression(features[:200], labels[:200], 3)
  assert np.mean(predict(features[200:]) == labels[200:]) > 0.9


def test_evaluate_scores_against_the_runs_own_data(tmp_path, monkeypatch, capsys):
  """A run trained with --data_dir elsewhere: test mode's --evaluate reads that data (the run's
  FLAGS.json says where, and a digest of it), not ./data or the bundled sample; where that data
  is gone, one sentence before anything loads, and evaluation.json stays as it was."""
  from dataset import mnist_splits
  from test_bad_input import idx
  train_x, train_y, test_x, test_y, _ = mnist_splits("/nonexistent")  # the bundled sample
  elsewhere = tmp_path / "elsewhere" / "mnist"
  elsewhere.mkdir(parents=True)
  for name, array in (("train-images-idx3-ubyte", train_x[:1000]),
                      ("train-labels-idx1-ubyte", train_y[:1000]),
                      ("t10k-images-idx3-ubyte", test_x[:300]),
                      ("t10k-labels-idx1-ubyte", test_y[:300])):
    (elsewhere / name).write_bytes(idx(array))
  cwd = tmp_path / "cwd"
  cwd.mkdir()
  common = ["--dataset", "mnist", "--out_name", "run"]
  run_main_here(cwd, monkeypatch, capsys, *common, "--input_height", "28", "--output_height", "28",
                "--train", "--epoch", "1", "--train_size", "32", "--batch_size", "16", "--z_dim",
                str(Z_DIM), "--data_dir", str(tmp_path / "elsewhere"), check=True)
  look = common + ["--evaluate", "--evaluate_n", "5", "--classifier_dir",
                   str(tmp_path / "classifier"), "--classifier_epochs", "1"]
  run_main_here(cwd, monkeypatch, capsys, *look, check=True)
  evaluation = cwd / "out" / "run" / "evaluation.json"
  assert json.loads(evaluation.read_text())["real_reference"]["n_test"] == 300  # not 1,000
  written = evaluation.read_bytes()
  shutil.rmtree(str(tmp_path / "elsewhere"))
  code, _, err = run_main_here(cwd, monkeypatch, capsys, *look)
  assert code == 1 and "Traceback" not in err, err
  assert ("This run was trained on other MNIST files (in %s) than --data_dir %s (the run's) "
          "gives (the bundled sample)" % (elsewhere, tmp_path / "elsewhere")) in err, err
  assert evaluation.read_bytes() == written


def write_fashion(folder, train=120, test=40, seed=0):
  """Fashion-MNIST's four IDX files (gzip, as published) of made-up garments: class k is a
  bright band at row 2k..2k+6, so a judge can tell them apart."""
  from test_bad_input import idx
  rng = np.random.RandomState(seed)
  os.makedirs(folder, exist_ok=True)
  for prefix, count in (("train", train), ("t10k", test)):
    labels = np.arange(count) % 10
    images = rng.randint(0, 40, (count, 28, 28))
    for i, k in enumerate(labels):
      images[i, 2 * k:2 * k + 7, 4:24] = 230
    for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
      with gzip.open(os.path.join(folder, "%s-%s-ubyte.gz" % (prefix, kind)), "wb") as f:
        f.write(idx(array))


def test_fashion_mnist_trains_with_its_class_names_and_is_judged_by_its_own_classifier(
    tmp_path, monkeypatch, capsys):
  write_fashion(str(tmp_path / "data" / "fashion_mnist"))
  common = ["--dataset", "fashion_mnist", "--out_name", "run"]
  _, out, _ = run_main_here(tmp_path, monkeypatch, capsys, *common, "--train", "--input_height",
                            "28", "--output_height", "28", "--epoch", "1", "--train_size", "32",
                            "--batch_size", "16", "--z_dim", str(Z_DIM), check=True)
  assert "model: conditional (10 classes: T-shirt/top, Trouser, Pullover, Dress, Coat, ...)" in out
  _, out, _ = run_main_here(tmp_path, monkeypatch, capsys, *common, "--generate", "4", "--label",
                            "Trouser", "--evaluate", "--evaluate_n", "5", "--classifier_dir",
                            str(tmp_path / "judges"), "--classifier_epochs", "3",
                            "--saved_model", "--onnx", "--tflite", check=True)
  assert "Training the Fashion-MNIST classifier once (3 epochs on 120 images from " in out
  result = json.load(open(str(tmp_path / "out" / "run" / "evaluation.json")))
  assert result["classifier"]["classes"][1] == "Trouser" and result["real_reference"]["n_test"] == 40
  assert result["real_reference"]["test_accuracy"] > 0.5  # its own classes, told apart
  assert "per-class accuracy of generated images: T-shirt/top:" in out
  (folder,) = glob.glob(str(tmp_path / "out" / "run" / "samples" / "generated_*"))
  assert len(glob.glob(os.path.join(folder, "*_label1.png"))) == 4
  (version,) = glob.glob(str(tmp_path / "out" / "run" / "saved_model" / "*"))
  with open(os.path.join(version, "assets", "generator.json")) as f:
    about = json.load(f)
  assert about["label_names"][9] == "Ankle boot" and about["dataset"] == "fashion_mnist"
  # the ONNX file carries the names, and its own range (0-9) is enforced by the model
  import onnx
  import onnxruntime
  (path,) = glob.glob(str(tmp_path / "out" / "run" / "onnx" / "*.onnx"))
  meta = {p.key: p.value for p in onnx.load(path).metadata_props}
  assert json.loads(meta["generator.json"])["label_names"] == about["label_names"]
  session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
  z = np.zeros((2, Z_DIM), np.float32)
  assert session.run(["images"], {"z": z, "y": np.array([0, 9])})[0].shape == (2, 28, 28, 1)
  with pytest.raises(onnxruntime.capi.onnxruntime_pybind11_state.InvalidArgument,
                     match="y_must_be_0_to_9"):
    session.run(["images"], {"z": z, "y": np.array([0, 10])})
  # and in LiteRT and TensorFlow
  from ai_edge_litert.interpreter import Interpreter
  (path,) = glob.glob(str(tmp_path / "out" / "run" / "tflite" / "*.tflite"))
  runner = Interpreter(model_path=path).get_signature_runner("serving_default")
  assert runner(z=z, y=np.array([0, 9]))["images"].shape == (2, 28, 28, 1)
  with pytest.raises((RuntimeError, ValueError), match="gather index out of bounds"):
    runner(z=z, y=np.array([0, 10]))
  import tensorflow.compat.v1 as tf
  with tf.Graph().as_default(), tf.Session() as sess:
    sig = tf.saved_model.loader.load(sess, ["serve"], version).signature_def["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="y_must_be_0_to_9"):
      sess.run(sig.outputs["images"].name, {sig.inputs["z"].name: z,
                                            sig.inputs["y"].name: np.array([0, 10])})


def test_a_run_recorded_before_runs_recorded_their_data_still_samples(tmp_path, monkeypatch,
                                                                     capsys):
  """MNIST runs of earlier versions have no "data" in their FLAGS.json: test mode describes them
  by their --dataset, as before."""
  common = ["--dataset", "mnist", "--out_name", "old"]
  run_main_here(tmp_path, monkeypatch, capsys, *common, "--train", "--input_height", "28",
                "--output_height", "28", "--epoch", "1", "--train_size", "32", "--batch_size",
                "16", "--z_dim", str(Z_DIM), check=True)
  flags_path = tmp_path / "out" / "old" / "FLAGS.json"
  record = json.loads(flags_path.read_text())
  for key in ("data", "labels"):
    record.pop(key)
  flags_path.write_text(json.dumps(record))
  _, out, _ = run_main_here(tmp_path, monkeypatch, capsys, *common, "--generate", "3", "--label",
                            "7", check=True)
  (folder,) = glob.glob(str(tmp_path / "out" / "old" / "samples" / "generated_*"))
  assert len(glob.glob(os.path.join(folder, "*_label7.png"))) == 3


def test_cifar10_trains_32x32_colour_with_its_class_names(tmp_path, monkeypatch, capsys):
  from test_dataset import write_cifar
  write_cifar(str(tmp_path / "data" / "cifar10"))
  common = ["--dataset", "cifar10", "--out_name", "run"]
  _, out, _ = run_main_here(tmp_path, monkeypatch, capsys, *common, "--train", "--input_height",
                            "32", "--output_height", "32", "--epoch", "1", "--train_size", "16",
                            "--batch_size", "8", "--z_dim", str(Z_DIM), check=True)
  assert "model: conditional (10 classes: airplane, automobile, bird, cat, deer, ...) DCGAN, " \
         "32x32x3 images" in out
  _, out, _ = run_main_here(tmp_path, monkeypatch, capsys, *common, "--generate", "2", "--label",
                            "ship", "--evaluate", "--evaluate_n", "2", "--classifier_dir",
                            str(tmp_path / "judges"), "--classifier_epochs", "1", check=True)
  assert "Training the CIFAR-10 classifier once (1 epoch on 60 images from " in out
  result = json.load(open(str(tmp_path / "out" / "run" / "evaluation.json")))
  assert result["classifier"]["classes"][8] == "ship" and result["real_reference"]["n_test"] == 12
  (folder,) = glob.glob(str(tmp_path / "out" / "run" / "samples" / "generated_*"))
  assert len(glob.glob(os.path.join(folder, "*_label8.png"))) == 2
  assert Image.open(os.path.join(folder, "000001_label8.png")).size == (32, 32)
