"""The DCGAN graph: names and shapes, sizes, training steps, checkpoints, resume."""
import os
import re

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import np_reference as ref
import training
from conftest import Config, tiny_dcgan, write_images
from model import DCGAN
from utils import UserError

# The original's variables (carpedm20/DCGAN-tensorflow's model.py) at its default sizes.
UNCONDITIONAL_64 = {
    "generator/g_h0_lin/Matrix": [100, 8192], "generator/g_h0_lin/bias": [8192],
    "generator/g_bn0": [512],
    "generator/g_h1/w": [5, 5, 256, 512], "generator/g_h1/biases": [256], "generator/g_bn1": [256],
    "generator/g_h2/w": [5, 5, 128, 256], "generator/g_h2/biases": [128], "generator/g_bn2": [128],
    "generator/g_h3/w": [5, 5, 64, 128], "generator/g_h3/biases": [64], "generator/g_bn3": [64],
    "generator/g_h4/w": [5, 5, 3, 64], "generator/g_h4/biases": [3],
    "discriminator/d_h0_conv/w": [5, 5, 3, 64], "discriminator/d_h0_conv/biases": [64],
    "discriminator/d_h1_conv/w": [5, 5, 64, 128], "discriminator/d_h1_conv/biases": [128],
    "discriminator/d_bn1": [128],
    "discriminator/d_h2_conv/w": [5, 5, 128, 256], "discriminator/d_h2_conv/biases": [256],
    "discriminator/d_bn2": [256],
    "discriminator/d_h3_conv/w": [5, 5, 256, 512], "discriminator/d_h3_conv/biases": [512],
    "discriminator/d_bn3": [512],
    "discriminator/d_h4_lin/Matrix": [8192, 1], "discriminator/d_h4_lin/bias": [1],
}
CONDITIONAL_MNIST = {
    "generator/g_h0_lin/Matrix": [110, 1024], "generator/g_h0_lin/bias": [1024],
    "generator/g_bn0": [1024],
    "generator/g_h1_lin/Matrix": [1034, 6272], "generator/g_h1_lin/bias": [6272],
    "generator/g_bn1": [6272],
    "generator/g_h2/w": [5, 5, 128, 138], "generator/g_h2/biases": [128], "generator/g_bn2": [128],
    "generator/g_h3/w": [5, 5, 1, 138], "generator/g_h3/biases": [1],
    "discriminator/d_h0_conv/w": [5, 5, 11, 11], "discriminator/d_h0_conv/biases": [11],
    "discriminator/d_h1_conv/w": [5, 5, 21, 74], "discriminator/d_h1_conv/biases": [74],
    "discriminator/d_bn1": [74],
    "discriminator/d_h2_lin/Matrix": [3636, 1024], "discriminator/d_h2_lin/bias": [1024],
    "discriminator/d_bn2": [1024],
    "discriminator/d_h3_lin/Matrix": [1034, 1], "discriminator/d_h3_lin/bias": [1],
}


def expand(spec):
  """Batch-norm entries stand for their four variables."""
  out = {}
  for name, shape in spec.items():
    if "_bn" in name:
      for var in ("beta", "gamma", "moving_mean", "moving_variance"):
        out[name + "/" + var] = shape
    else:
      out[name] = shape
  return out


def with_adam(spec, model):
  """The optimizer state the checkpoint holds beside the model: Adam slots and beta powers."""
  out = dict(spec)
  for var in model.d_vars + model.g_vars:
    out[var.op.name + "/Adam"] = out[var.op.name + "/Adam_1"] = var.shape.as_list()
  for name in ("beta1_power", "beta2_power", "beta1_power_1", "beta2_power_1"):
    out[name] = []
  return out


@pytest.mark.parametrize("conditional", [False, True])
def test_checkpoint_holds_the_original_variables_and_adam_state(graph_session, tmp_path, conditional):
  spec = expand(CONDITIONAL_MNIST if conditional else UNCONDITIONAL_64)
  kwargs = dict(y_dim=10, c_dim=1, output_height=28, output_width=28) if conditional else {}
  model = DCGAN(graph_session, batch_size=64, checkpoint_dir=str(tmp_path), out_dir=str(tmp_path),
                seed=1, **kwargs)
  assert {v.op.name: v.shape.as_list() for v in model.model_vars} == spec
  graph_session.run(model.init_op)
  path = model.save(str(tmp_path), 7)[0]
  assert os.path.basename(path) == "model.b64-7"
  saved = {name: list(shape) for name, shape in tf.train.list_variables(path)}
  assert saved == with_adam(spec, model)
  # D's optimizer was built first, as in the original.
  assert model.d_optim is not None and model.g_optim is not None


@pytest.mark.parametrize("conditional", [False, True])
def test_variable_split_between_d_and_g(graph_session, tmp_path, conditional):
  model = tiny_dcgan(graph_session, tmp_path, conditional)
  trainable = set(tf.trainable_variables())
  assert set(model.d_vars) | set(model.g_vars) == trainable
  assert not set(model.d_vars) & set(model.g_vars)
  assert all(v.op.name.startswith("discriminator/") for v in model.d_vars)
  assert all(v.op.name.startswith("generator/") for v in model.g_vars)
  assert not any("moving" in v.op.name for v in trainable)
  # The sampler reuses the generator's variables: no sampler copies.
  assert not [v for v in tf.global_variables() if "generator_1" in v.op.name or "sampler" in v.op.name]


@pytest.mark.parametrize("conditional,size", [
    (False, (64, 64)), (False, (96, 96)), (False, (128, 128)), (False, (48, 80)), (False, (28, 28)),
    (True, (28, 28)), (True, (16, 16)), (True, (20, 36))])
def test_shapes_at_several_sizes(graph_session, tmp_path, conditional, size):
  h, w = size
  model = tiny_dcgan(graph_session, tmp_path, conditional, output_height=h, output_width=w)
  c = model.c_dim
  assert model.G.shape.as_list() == [None, h, w, c]
  assert model.sampler.shape.as_list() == [None, h, w, c]
  assert model.D_logits.shape.as_list() == [None, 1]
  graph_session.run(model.init_op)
  z, labels = model.sample_inputs(5)  # any batch size, not only batch_size
  out = model.sample(z, labels)
  assert out.shape == (5, h, w, c)
  low, high = model.value_range
  assert out.min() >= low and out.max() <= high


def variable_values(sess, model):
  return sess.run({v.op.name: v for v in model.all_vars})  # one run: one executor to build


@pytest.mark.parametrize("conditional", [False, True])
def test_one_training_step_updates_d_then_g_twice(graph_session, tmp_path, faces, mnist16, conditional):
  data = mnist16 if conditional else faces
  model = tiny_dcgan(graph_session, tmp_path, conditional, data=data)
  graph_session.run(model.init_op)
  before = variable_values(graph_session, model)
  counter = model.train(Config(epoch=1, train_size=4))
  after = variable_values(graph_session, model)
  assert counter == 2
  for var in model.d_vars + model.g_vars:
    assert not np.allclose(before[var.op.name], after[var.op.name]), var.op.name
  # Adam's beta1 power: one D update, two G updates.
  np.testing.assert_allclose(after["beta1_power"], 0.5 ** 2)
  np.testing.assert_allclose(after["beta1_power_1"], 0.5 ** 3)
  # Batch-norm moving statistics were updated in place by the training runs.
  assert not np.allclose(after["generator/g_bn0/moving_mean"], before["generator/g_bn0/moving_mean"])
  assert os.path.exists(os.path.join(str(tmp_path), "checkpoint", "model.b4-2.index"))
  assert os.path.exists(os.path.join(str(tmp_path), "samples", "train_00000002.png"))


def test_training_adds_no_ops_to_the_graph(graph_session, tmp_path, faces):
  model = tiny_dcgan(graph_session, tmp_path, data=faces)
  graph_session.graph.finalize()  # any op built during training would raise
  assert model.train(Config(epoch=2, train_size=8, sample_freq=1, ckpt_freq=2)) == 5
  ok, counter = model.load(str(tmp_path / "checkpoint"))
  assert ok and counter == 5


@pytest.mark.parametrize("conditional", [False, True])
def test_restored_sampler_matches_numpy_forward_pass(tmp_path, faces, mnist16, conditional):
  data = mnist16 if conditional else faces
  with tf.Graph().as_default(), tf.Session() as sess:
    trained = tiny_dcgan(sess, tmp_path, conditional, data=data)
    trained.train(Config(epoch=1, train_size=8))
  with tf.Graph().as_default(), tf.Session() as sess:
    model = tiny_dcgan(sess, tmp_path, conditional, seed=999)  # other seed: weights must come from disk
    sess.run(model.init_op)
    ok, counter = model.load(str(tmp_path / "checkpoint"))
    assert ok and counter == 3
    z, labels = model.sample_inputs(6)
    got = model.sample(z, labels)
  reader = tf.train.load_checkpoint(str(tmp_path / "checkpoint" / "model.b4-3"))
  weights = {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(
      str(tmp_path / "checkpoint" / "model.b4-3"))}
  expected = ref.generator_inference(weights, z.astype(np.float64), labels, 16, 16)
  np.testing.assert_allclose(got, expected, atol=2e-4)
  # and the moving statistics really were trained, so inference mode is being tested
  assert not np.allclose(weights["generator/g_bn0/moving_variance"], 1.0)


def test_resume_continues_counter_epoch_batch_and_adam(tmp_path, faces, capsys):
  with tf.Graph().as_default(), tf.Session() as sess:
    model = tiny_dcgan(sess, tmp_path, data=faces)
    assert model.train(Config(epoch=1, train_size=8)) == 3  # 2 batches of 4
  capsys.readouterr()
  with tf.Graph().as_default(), tf.Session() as sess:
    # 3 batches per epoch now: the run stopped after 2 steps, so it resumes at batch 2 of epoch 0
    model = tiny_dcgan(sess, tmp_path, data=faces)
    assert model.train(Config(epoch=2, train_size=12)) == 7
    beta1_d, beta1_g = sess.run(["beta1_power:0", "beta1_power_1:0"])
  log = capsys.readouterr().out
  steps = [line for line in log.splitlines() if line.startswith("[")]
  assert "resuming at counter 3" in log
  assert steps[0].startswith("[       4 Epoch:[ 0/ 2] [   2/   3]")
  assert steps[-1].startswith("[       7 Epoch:[ 1/ 2] [   2/   3]")
  assert len(steps) == 4
  # 6 D updates and 12 G updates in all: Adam's state went on, not restarted
  np.testing.assert_allclose(beta1_d, 0.5 ** 7, rtol=1e-6)
  np.testing.assert_allclose(beta1_g, 0.5 ** 13, rtol=1e-6)


def test_model_only_checkpoint_loads_for_sampling_and_training(tmp_path, faces, capsys):
  """A checkpoint as the original wrote it: Saver built before the optimizers."""
  ckpt_dir = str(tmp_path / "checkpoint")
  with tf.Graph().as_default(), tf.Session() as sess:
    model = tiny_dcgan(sess, tmp_path, data=faces)
    sess.run(model.init_op)
    original_saver = model.model_saver  # covers exactly the original's variables
    original_saver.save(sess, os.path.join(ckpt_dir, "model.b4"), global_step=40)
    z, _ = model.sample_inputs(4)
    expected = model.sample(z)
  saved = [name for name, _ in tf.train.list_variables(os.path.join(ckpt_dir, "model.b4-40"))]
  assert not any("Adam" in name or "power" in name for name in saved)
  with tf.Graph().as_default(), tf.Session() as sess:
    model = tiny_dcgan(sess, tmp_path, data=faces, seed=5)
    sess.run(model.init_op)
    assert model.load(ckpt_dir) == (True, 40)
    np.testing.assert_allclose(model.sample(z), expected, atol=1e-6)
  assert "no optimizer state" in capsys.readouterr().out
  with tf.Graph().as_default(), tf.Session() as sess:
    model = tiny_dcgan(sess, tmp_path, data=faces, seed=5)
    assert model.train(Config(epoch=20, train_size=8)) == 41


def test_checkpoint_with_other_flags_is_explained(tmp_path, faces):
  with tf.Graph().as_default(), tf.Session() as sess:
    model = tiny_dcgan(sess, tmp_path, data=faces, z_dim=8)
    sess.run(model.init_op)
    model.save(str(tmp_path / "checkpoint"), 3)
  with tf.Graph().as_default(), tf.Session() as sess:
    model = tiny_dcgan(sess, tmp_path, z_dim=6)
    sess.run(model.init_op)
    with pytest.raises(UserError, match="--z_dim 8"):
      model.load(str(tmp_path / "checkpoint"))
  with tf.Graph().as_default(), tf.Session() as sess:
    model = tiny_dcgan(sess, tmp_path, output_height=32, output_width=32)
    sess.run(model.init_op)
    with pytest.raises(UserError, match="--output_height"):
      model.load(str(tmp_path / "checkpoint"))
  with tf.Graph().as_default(), tf.Session() as sess:
    model = tiny_dcgan(sess, tmp_path, conditional=True)
    sess.run(model.init_op)
    with pytest.raises(UserError, match="--dataset"):
      model.load(str(tmp_path / "checkpoint"))


def test_same_seed_same_losses_and_samples(tmp_path, faces, capsys):
  runs = []
  for name in ("a", "b"):
    with tf.Graph().as_default(), tf.Session() as sess:
      model = tiny_dcgan(sess, tmp_path / name, data=faces, seed=77)
      model.train(Config(epoch=2, train_size=8))
      z, _ = model.sample_inputs()
      runs.append((model.sample(z), [l.split("time:")[1].split(",", 1)[1] for l in
                                     capsys.readouterr().out.splitlines() if l.startswith("[")]))
  np.testing.assert_array_equal(runs[0][0], runs[1][0])
  assert runs[0][1] == runs[1][1] and len(runs[0][1]) == 4


def test_generator_image_summaries_on_request(tmp_path, faces):
  from tensorboard.backend.event_processing import event_accumulator
  with tf.Graph().as_default(), tf.Session() as sess:
    model = tiny_dcgan(sess, tmp_path, data=faces, G_img_sum=True)
    model.train(Config(epoch=1, train_size=4))
  acc = event_accumulator.EventAccumulator(str(tmp_path / "logs"))
  acc.Reload()
  images = [tag for tag in acc.Tags()["images"] if tag.startswith("G/image")]
  assert images and acc.Images(images[0])[0].width == 16


def test_summaries_at_a_cadence_and_the_loop_timed_by_part(tmp_path, faces, capsys):
  with tf.Graph().as_default(), tf.Session() as sess:
    model = tiny_dcgan(sess, tmp_path, data=faces)
    result = training.train(model.job(faces), Config(epoch=2, train_size=8, summary_freq=2,
                                                     sample_freq=3, ckpt_freq=3))
  (events,) = os.listdir(str(tmp_path / "logs"))
  steps = {}
  for event in tf.train.summary_iterator(str(tmp_path / "logs" / events)):
    for value in event.summary.value:
      steps.setdefault(value.tag, []).append(event.step)
  assert steps["d_loss"] == steps["g_loss"] == steps["d_"] == [1, 2, 4]  # counters 1..4 ran
  # the loop's time by part: each part that ran took time, and the closing line's shares
  # (with the rest) make up the whole
  assert (result.counter, result.steps) == (5, 4) and set(result.spent) == set(training.LOOP_PARTS)
  for part in ("step", "data", "progress", "grids", "checkpoints"):  # saved at 3 and at the end
    assert result.spent[part] > 0, part
  assert result.spent["data"] < result.spent["step"] <= result.seconds
  (line,) = [l for l in capsys.readouterr().out.splitlines() if l.startswith(" [*] 4 steps in ")]
  seconds = float(re.match(r" \[\*\] 4 steps in ([0-9.]+) s", line).group(1))
  assert sum(result.spent.values()) <= seconds + 0.05
  names = list(training.LOOP_PARTS.values()) + ["the rest"]
  shares = [float(re.search(r"%s ([0-9.]+)%%" % name, line).group(1)) for name in names]
  assert abs(sum(shares) - 100.0) < 0.5 and shares[0] > 10.0, line


# The original's constructor: without c_dim, the channels come from the data.

def generator_channels(sess, **kwargs):
  dcgan = DCGAN(sess, batch_size=2, sample_num=2, gf_dim=4, df_dim=4, gfc_dim=8, dfc_dim=8,
                output_height=16, output_width=16, seed=1, **kwargs)
  return dcgan.c_dim, int(dcgan.G.shape[-1])


def test_the_original_constructor_builds_one_channel_mnist(graph_session):
  assert generator_channels(graph_session, dataset_name="mnist", y_dim=10) == (1, 1)


@pytest.mark.parametrize("mode,c_dim", [("L", 1), ("RGB", 3)])
def test_an_image_folder_gives_its_channels(tmp_path, mode, c_dim):
  write_images(str(tmp_path / "faces"), 2, mode=mode)
  with tf.Graph().as_default(), tf.Session() as sess:
    assert generator_channels(sess, dataset_name="faces", data_dir=str(tmp_path)) == (c_dim, c_dim)


def test_no_images_give_three_channels_and_an_explicit_c_dim_wins(tmp_path):
  write_images(str(tmp_path / "faces"), 2, mode="L")
  with tf.Graph().as_default(), tf.Session() as sess:
    assert generator_channels(sess, dataset_name="nowhere", data_dir=str(tmp_path)) == (3, 3)
  with tf.Graph().as_default(), tf.Session() as sess:
    assert generator_channels(sess, dataset_name="faces", data_dir=str(tmp_path), c_dim=3) == (3, 3)


def test_the_updates_per_iteration_are_the_train_ops_count(graph_session, tmp_path, faces):
  """step.UPDATES is the one statement of D 1, G 2: run_iteration runs what the train ops say,
  and a changed count changes every update it makes (Adam's beta1 powers count them)."""
  import step
  model = tiny_dcgan(graph_session, tmp_path, data=faces)
  assert model.train_ops.updates == step.UPDATES == (("discriminator", 1), ("generator", 2))
  graph_session.run(model.init_op)
  images, _ = faces.get([0, 1, 2, 3])
  feed = model.feed(np.zeros((4, 8), np.float32), None, images)
  ops = model.train_ops._replace(updates=(("discriminator", 2), ("generator", 1)))
  result = step.run_iteration(graph_session, ops, feed, summarize=False)
  powers = graph_session.run(["beta1_power:0", "beta1_power_1:0"])
  np.testing.assert_allclose(powers, [0.5 ** 3, 0.5 ** 2])  # D twice, G once
  assert np.isfinite(list(result.losses)).all() and result.skipped == []
  result = step.run_iteration(graph_session, model.train_ops, feed, summarize=False)
  np.testing.assert_allclose(graph_session.run(["beta1_power:0", "beta1_power_1:0"]),
                             [0.5 ** 4, 0.5 ** 4])  # then the original's: D once, G twice
  assert result.losses.d_loss == pytest.approx(result.losses.d_loss_real
                                                + result.losses.d_loss_fake, rel=1e-6)


def test_test_mode_reads_an_image_folders_channels_from_its_checkpoint(graph_session, tmp_path):
  from checkpoints import checkpoint_shapes, generated_channels
  model = tiny_dcgan(graph_session, tmp_path, c_dim=1)
  graph_session.run(model.init_op)
  model.save(str(tmp_path / "checkpoint"), 1)
  assert generated_channels(checkpoint_shapes(str(tmp_path / "checkpoint"))[1]) == 1
  assert generated_channels({}) == 3  # nothing to read: the original's default
