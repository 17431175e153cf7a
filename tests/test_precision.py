"""--precision: what each means on which device, float16 loss scaling, checkpoints across precisions.

Float16 runs here through TensorFlow's CPU emulation of its GPU rewrite
(auto_mixed_precision_cpu, asked for with fp16_on_cpu, main.py's --fp16_on_cpu): every op
the rewrite lowers rounds to float16, so underflow and overflow happen as on a GPU.
"""
import glob
import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from tensorboard.backend.event_processing import event_accumulator

import precision as precision_module
from conftest import Config, tiny_dcgan
import replicas
from optim import Optimizer
from precision import precision_mode, session_config
from test_main import only_run_folder, run_main_here
from utils import UserError

FP16 = precision_mode("fp16", gpu=False, fp16_on_cpu=True)  # the CPU emulation, GPU or not


# ----------------------------------------------------------------------------
# the decision

@pytest.mark.parametrize("gpu", [True, False])
@pytest.mark.parametrize("cpu_bf16", [True, False])
@pytest.mark.parametrize("fp16_on_cpu", [False, True])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_float16_is_never_chosen_without_loss_scaling(precision, fp16_on_cpu, cpu_bf16, gpu):
  try:
    mode = precision_mode(precision, gpu=gpu, cpu_bf16=cpu_bf16, fp16_on_cpu=fp16_on_cpu)
  except UserError:
    return
  float16 = mode.rewrite in ("auto_mixed_precision", "auto_mixed_precision_cpu")
  assert mode.loss_scaling == float16
  if precision == "bf16":
    assert mode.rewrite == "auto_mixed_precision_onednn_bfloat16"  # bfloat16 or nothing
  if precision == "fp32":
    assert mode.rewrite is None and not mode.loss_scaling


def test_what_each_precision_means_on_each_device():
  cpu = dict(gpu=False, cpu_bf16=False)
  assert precision_mode("fp16", gpu=True).rewrite == "auto_mixed_precision"
  assert precision_mode("fp16", gpu=True, fp16_on_cpu=True).rewrite == "auto_mixed_precision"
  assert precision_mode("fp16", gpu=False, fp16_on_cpu=True).rewrite == "auto_mixed_precision_cpu"
  assert precision_mode("bf16", gpu=False, cpu_bf16=True).rewrite == \
      "auto_mixed_precision_onednn_bfloat16"
  with pytest.raises(UserError, match=r"^--precision fp16 needs a GPU.*add --fp16_on_cpu"):
    precision_mode("fp16", **cpu)
  with pytest.raises(UserError, match=r"^--precision bf16 has no graph rewrite for GPUs.*"
                                      r"use --precision fp16"):
    precision_mode("bf16", gpu=True, cpu_bf16=True)
  with pytest.raises(UserError, match="needs a CPU with AVX512-BF16"):
    precision_mode("bf16", **cpu)
  with pytest.raises(UserError, match="must be one of fp32, fp16, bf16"):
    precision_mode("fp8", **cpu)


def test_on_a_simulated_gpu_the_session_gets_float16_only_with_fp16(monkeypatch):
  monkeypatch.setattr(precision_module.tf.config, "list_physical_devices", lambda kind: ["GPU:0"])
  monkeypatch.setattr(precision_module, "cpu_supports_bf16", lambda: True)
  rewrite = session_config("fp16").graph_options.rewrite_options
  assert rewrite.auto_mixed_precision == rewrite.ON and not rewrite.auto_mixed_precision_cpu
  # on a GPU nothing is turned off; under the CPU emulation what would crash it or slow it
  emulated = session_config(FP16).graph_options.rewrite_options
  for name in precision_module.EMULATION_OFF:
    assert getattr(rewrite, name) != rewrite.OFF and getattr(emulated, name) == rewrite.OFF, name
  assert not rewrite.disable_model_pruning and emulated.disable_model_pruning
  assert rewrite.meta_optimizer_iterations != rewrite.ONE == emulated.meta_optimizer_iterations
  for precision in ("fp32", "bf16"):
    try:
      rewrite = session_config(precision).graph_options.rewrite_options
    except UserError as err:
      assert precision == "bf16" and "--precision fp16" in str(err)
      continue
    assert rewrite.auto_mixed_precision != rewrite.ON


# ----------------------------------------------------------------------------
# loss scaling, on the CPU's float16 emulation

def regression(loss_factor, loss_scaling, x_scale=1.0, steps=5):
  """A 16 -> 4 linear least-squares model trained by optim.Optimizer (one replica, the same
  object the DCGAN's networks use) under float16 emulation.

  Returns (initial weights, weights after `steps`, losses, the scaling tensors' last values,
  Adam's first-moment slot after training)."""
  rng = np.random.RandomState(0)
  x = (rng.randn(32, 16) * x_scale).astype(np.float32)
  target = x.dot(rng.randn(16, 4)).astype(np.float32)
  with tf.Graph().as_default():
    w = tf.get_variable("w", initializer=(0.1 * rng.randn(16, 4)).astype(np.float32))
    loss = tf.reduce_mean(tf.square(tf.matmul(tf.constant(x), w) - target)) * loss_factor
    optimizer = Optimizer("generator", replicas.replication(), 0.01, 0.5, loss_scaling)
    update, scaling = optimizer.apply_updates(optimizer.register_gradients(loss, [w]), [w])
    slot = [v for v in tf.global_variables() if v.op.name == "w/Adam"][0]
    config = session_config(FP16, inter_op_threads=1)
    with tf.Session(config=config) as sess:
      sess.run(tf.global_variables_initializer())
      before = sess.run(w)
      losses, info = [], {}
      for _ in range(steps):
        _, info, value = sess.run([update, scaling, loss])
        losses.append(value)
      return before, sess.run(w), losses, info, sess.run(slot)


def test_float16_gradients_underflow_without_loss_scaling_and_train_with_it():
  """A loss multiplied by 1e-7: its float16 gradients are below float16's smallest subnormal."""
  before, after, losses, _, _ = regression(1e-7, loss_scaling=False, steps=30)
  np.testing.assert_array_equal(after, before)  # every gradient was zero: nothing learned
  assert losses[-1] == losses[0]
  before, after, losses, info, _ = regression(1e-7, loss_scaling=True, steps=30)
  assert np.abs(after - before).max() > 0.1  # Adam's steps of ~lr each: it trains
  assert losses[-1] < 0.8 * losses[0]
  assert info["finite"] and info["skipped"] == 0 and info["scale"] == 2.0 ** 15


def test_an_overflowing_step_is_skipped_the_variables_kept_and_the_scale_lowered():
  """Large inputs: the loss fits float16 but its gradients times 2^15 do not."""
  before, after, _, info, slot = regression(1.0, loss_scaling=True, x_scale=30.0, steps=1)
  np.testing.assert_array_equal(after, before)
  np.testing.assert_array_equal(slot, np.zeros_like(slot))  # Adam's state untouched too
  assert not info["finite"] and info["skipped"] == 1 and info["scale"] == 2.0 ** 14


# ----------------------------------------------------------------------------
# the DCGAN in fp16, and checkpoints across precisions

def test_fp16_dcgan_keeps_the_original_names_and_adds_only_the_loss_scales(tmp_path):
  names = {}
  for precision in (precision_mode("fp32", gpu=False), FP16):
    with tf.Graph().as_default(), tf.Session() as sess:
      tiny_dcgan(sess, tmp_path, conditional=True, precision=precision)
      names[precision.name] = {v.op.name for v in tf.global_variables()}
  extra = names["fp16"] - names["fp32"]
  assert names["fp32"] <= names["fp16"]
  assert extra == {"%s/%s" % (scope, name) for scope in ("d_loss_scale", "g_loss_scale")
                   for name in ("current_loss_scale", "good_steps", "skipped_steps")}


def train_tiny(tmp_path, data, precision, epochs):
  with tf.Graph().as_default(), tf.Session(config=session_config(precision)) as sess:
    dcgan = tiny_dcgan(sess, tmp_path, conditional=True, data=data, precision=precision)
    counter = dcgan.train(Config(epoch=epochs, train_size=16, ckpt_freq=1000))
    variables = tf.global_variables()
    values = dict(zip([v.op.name for v in variables], sess.run(variables)))  # one run: one rewrite
  return counter, values


def test_overflowing_dcgan_updates_are_skipped_logged_and_counted(tmp_path, mnist16, capsys):
  """A loss scale of 2^40 overflows float16 in every backward pass: no update is applied."""
  with tf.Graph().as_default(), tf.Session(config=session_config(FP16)) as sess:
    dcgan = tiny_dcgan(sess, tmp_path, conditional=True, data=mnist16, precision=FP16,
                       initial_loss_scale=2.0 ** 40)
    trained = tf.trainable_variables() + [v for v in tf.global_variables() if "Adam" in v.op.name]
    sess.run(dcgan.init_op)
    before = sess.run(trained)
    dcgan.data = mnist16
    dcgan.init_op = tf.no_op()  # keep the values just read (train() runs init_op first)
    counter = dcgan.train(Config(epoch=1, train_size=16, ckpt_freq=1000))
    after = sess.run(trained)
    by_name = {v.op.name: v for v in tf.global_variables()}
    d_scale, g_scale, d_skipped, g_skipped = sess.run([by_name[name] for name in (
        "d_loss_scale/current_loss_scale", "g_loss_scale/current_loss_scale",
        "d_loss_scale/skipped_steps", "g_loss_scale/skipped_steps")])
  out = capsys.readouterr().out
  assert counter == 5 and (d_skipped, g_skipped) == (4, 8)  # 4 steps of 1 D + 2 G updates
  assert d_scale == 2.0 ** 36 and g_scale == 2.0 ** 32  # halved at every skipped update
  for var, old, new in zip(trained, before, after):
    np.testing.assert_array_equal(new, old, err_msg=var.op.name)
  lines = [l for l in out.splitlines() if "float16 gradients overflowed" in l]
  assert len(lines) == 12
  assert lines[0] == (" [!] step 1: D's float16 gradients overflowed, so its update was skipped; "
                      "loss scale lowered to 5.49756e+11 (1 D updates skipped so far)")
  assert lines[-1].startswith(" [!] step 4: G's") and lines[-1].endswith("(8 G updates skipped so far)")


def test_checkpoints_move_between_fp16_and_fp32(tmp_path, mnist16, capsys):
  counter, fp16_values = train_tiny(tmp_path, mnist16, FP16, 1)
  assert counter == 5 and all(np.isfinite(v).all() for v in fp16_values.values())
  # fp16 -> fp32: resumes at the same counter with the same weights, and trains on
  counter, fp32_values = train_tiny(tmp_path, mnist16, "fp32", 2)
  assert counter == 9 and " [*] Load SUCCESS: resuming at counter 5" in capsys.readouterr().out
  # fp32 (as an fp32 run or the original writes it) -> fp16: Adam's state kept, scales afresh
  counter, fp16_again = train_tiny(tmp_path, mnist16, FP16, 3)
  out = capsys.readouterr().out
  assert counter == 13 and "resuming at counter 9" in out and "loss scales start afresh" in out
  assert "holds no optimizer state" not in out


def test_fp16_through_main_writes_finite_weights_and_a_loss_scale_scalar(tmp_path, monkeypatch,
                                                                      capsys):
  _, out, _ = run_main_here(tmp_path, monkeypatch, capsys, "--dataset", "mnist",
                            "--input_height", "28", "--output_height", "28", "--train", "--epoch",
                            "1", "--train_size", "192", "--batch_size", "64", "--precision",
                            "fp16", "--fp16_on_cpu", "--summary_freq", "1", check=True)
  run_dir = only_run_folder(tmp_path)
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoint")))
  shapes = reader.get_variable_to_shape_map()
  for name in shapes:
    if name.startswith(("generator/", "discriminator/")):
      assert np.isfinite(reader.get_tensor(name)).all(), name
  assert reader.get_tensor("g_loss_scale/current_loss_scale") > 0
  # every skipped update was logged, one line each, and counted in the checkpoint
  skipped = {net: int(reader.get_tensor("%s_loss_scale/skipped_steps" % net.lower()))
             for net in ("D", "G")}
  for net in ("D", "G"):
    lines = [l for l in out.splitlines()
             if "%s's float16 gradients overflowed, so its update was skipped" % net in l]
    assert len(lines) == skipped[net], (net, skipped, out[-2000:])
  events = event_accumulator.EventAccumulator(glob.glob(os.path.join(run_dir, "logs"))[0])
  events.Reload()
  scalars = events.Tags()["scalars"]
  assert {"d_loss_scale", "g_loss_scale", "d_loss", "g_loss"} <= set(scalars)
  assert [e.step for e in events.Scalars("g_loss_scale")] == [1, 2, 3]
  assert all(e.value >= 1 for e in events.Scalars("d_loss_scale"))
  # and the fp16 checkpoint serves test mode, which runs in fp32
  run_main_here(tmp_path, monkeypatch, capsys, "--dataset", "mnist", "--out_name",
                os.path.basename(run_dir), check=True)
  assert glob.glob(os.path.join(run_dir, "samples", "test_*.png"))


def test_fp16_without_a_gpu_is_refused_in_one_sentence_through_main(tmp_path, monkeypatch,
                                                                    capsys):
  code, _, err = run_main_here(tmp_path, monkeypatch, capsys, "--dataset", "mnist",
                               "--input_height", "28", "--output_height", "28", "--train",
                               "--precision", "fp16")
  assert code == 1 and "Traceback" not in err
  errors = [l for l in err.splitlines() if l.startswith("error:")]
  assert errors == ["error: --precision fp16 needs a GPU, and TensorFlow sees none here; use "
                    "--precision fp32 (or add --fp16_on_cpu to emulate float16 on the CPU, "
                    "slowly, as the tests do)."]
  assert not os.path.exists(os.path.join(str(tmp_path), "out"))  # nothing written
