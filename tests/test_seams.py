"""The seams for a GAN researcher's own loss and optimizer, proven from outside the project: a
hinge loss, an R1 penalty (it needs D and the real images), and an RMSProp update rule, each
written here, never in the project's files, and trained two seeded steps through the project's
public API (DCGAN's loss= and update_rule=: step.Tower, step.GANLoss, optim.Optimizer's update
rule) on one device, on two replicas, and under fp16 emulation."""
import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import step
from conftest import PROJECT_DIR, tiny_dcgan
from precision import precision_mode, session_config

R1_GAMMA = 10.0


def hinge_loss(model, tower):
  """The hinge loss (Lim & Ye 2017; SAGAN, BigGAN): D's margins, G's raw score."""
  d_real = tf.reduce_mean(tf.nn.relu(1.0 - model.real_logits))
  d_fake = tf.reduce_mean(tf.nn.relu(1.0 + model.fake_logits))
  return step.GANLoss(d_real, d_fake, d_real + d_fake, -tf.reduce_mean(model.fake_logits))


def r1_loss(model, tower):
  """The original's loss plus R1 (Mescheder et al. 2018): gamma/2 times the squared norm of D's
  gradient at the real images, in D's loss; the inner gradient taken at fp16's scale."""
  base = step.gan_loss(model)
  scale = tower.loss_scale()
  logits = tower.discriminate(tower.images)
  grads = tf.gradients(tf.reduce_sum(logits) * scale, tower.images)[0] / scale
  penalty = 0.5 * R1_GAMMA * tf.reduce_mean(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]))
  return base._replace(d_loss=base.d_loss + penalty)


class RMSProp(object):
  """tf.train.RMSPropOptimizer's update (no momentum, not centered), as an update rule: one
  slot <var>/RMSProp per variable, applied to every replica's copy."""

  def __init__(self, learning_rate, beta1=None, decay=0.9, epsilon=1e-10):
    self.learning_rate, self.decay, self.epsilon = learning_rate, decay, epsilon
    self.slots = {}

  def create(self, var_list, strategy):
    for var in var_list:
      with strategy.extended.colocate_vars_with(var):
        self.slots[var.name] = tf.get_variable(var.op.name + "/RMSProp", var.shape,
                                               var.dtype.base_dtype, tf.zeros_initializer(),
                                               trainable=False)

  def apply(self, strategy, grads_and_vars):
    def update(var, grad, ms):
      ms = ms.assign(self.decay * ms + (1.0 - self.decay) * tf.square(grad))
      return var.assign_sub(self.learning_rate * grad / (tf.sqrt(ms) + self.epsilon))
    updates = []
    for grad, var in grads_and_vars:
      updates += list(strategy.extended.update(var, update, args=(grad, self.slots[var.name]),
                                               group=False))
    return tf.group(*updates)


PLUGGED = {"hinge": dict(loss=hinge_loss), "r1": dict(loss=r1_loss),
           "rmsprop": dict(update_rule=RMSProp)}


def two_steps(dcgan, sess, seed=0):
  """(D's loss before any update, the losses of two seeded steps, {variable: changed?}) of a
  tiny unconditional model fed random images."""
  rng = np.random.RandomState(seed)
  batch = dcgan.batch_size * dcgan.replication.num_replicas
  feeds = [dcgan.feed(rng.uniform(-1, 1, (batch, dcgan.z_dim)).astype(np.float32), None,
                      rng.uniform(-1, 1, (batch, 16, 16, 3)).astype(np.float32))
           for _ in range(2)]
  sess.run(dcgan.init_op)
  before = sess.run({v.op.name: v for v in dcgan.d_vars + dcgan.g_vars})
  first = sess.run({"d_loss": dcgan.d_loss, "parts": dcgan.d_loss_real + dcgan.d_loss_fake,
                    "real": dcgan.D_logits, "fake": dcgan.D_logits_}, feeds[0])
  losses = [dcgan.train_step(feed).losses for feed in feeds]
  after = sess.run({v.op.name: v for v in dcgan.d_vars + dcgan.g_vars})
  return first, losses, {name: not np.array_equal(before[name], after[name]) for name in before}


def moving_average_updates(op, scope):
  """How many batch-norm moving-average updates (an assign_sub of a moving_mean or
  moving_variance under `scope`) running `op` runs: those it depends on, through data or
  control."""
  seen, stack, count = set(), [op], 0
  while stack:
    node = stack.pop()
    if node in seen:
      continue
    seen.add(node)
    if (node.type in ("AssignSub", "AssignSubVariableOp")
        and node.inputs[0].name.startswith(scope) and "/moving_" in node.inputs[0].name):
      count += 1
    stack.extend([tensor.op for tensor in node.inputs] + list(node.control_inputs))
  return count


def check_d_update_runs_every_pass(name, dcgan):
  """D's update runs the batch-norm updates of every pass of D its loss made: the tower's real
  and fake passes, and R1's own pass (Tower.discriminate) with it, on one device (in place)
  as on several replicas (held, ops.HeldUpdates): 3 updates a statistic against 2."""
  d_update = dcgan.train_ops.discriminator.update
  moving = [v for v in dcgan.all_vars if v.op.name.startswith("discriminator/")
            and "/moving_" in v.op.name]
  passes = 3 if name == "r1" else 2
  assert moving and moving_average_updates(d_update, "discriminator/") == (
      passes * len(moving) * dcgan.replication.num_replicas)


def check(name, first, losses, changed, variables):
  """What each plug-in must have done, on any number of replicas and in either precision."""
  assert all(np.isfinite(value) for step_losses in losses for value in step_losses)
  # every weight moved (a bias may not: the hinge's gradients for D's last bias cancel while
  # every margin is active)
  weights = {v: c for v, c in changed.items() if not v.endswith(("bias", "biases", "beta"))}
  assert len(weights) > 10 and all(weights.values()), [v for v, c in weights.items() if not c]
  if name == "hinge":  # D's loss is the hinge of the logits D gave
    want = (np.maximum(0, 1 - first["real"]).mean() + np.maximum(0, 1 + first["fake"]).mean())
    assert abs(first["d_loss"] - want) < 1e-2 * max(1.0, want)
  if name == "r1":  # the penalty is there, and positive
    assert first["d_loss"] > first["parts"] + 1e-6
  if name == "rmsprop":  # its slots, not Adam's
    assert any(v.endswith("/RMSProp") for v in variables)
    assert not any(v.endswith(("/Adam", "/Adam_1")) for v in variables)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name", sorted(PLUGGED))
def test_a_loss_or_optimizer_from_outside_trains_on_one_device(tmp_path, name, precision):
  mode = precision_mode(precision, gpu=False, fp16_on_cpu=precision == "fp16")
  with tf.Graph().as_default(), tf.Session(config=session_config(mode)) as sess:
    tf.set_random_seed(1)
    # (fp16: a scale that neither plug-in's gradients overflow, so both steps update; a
    # step that did would be skipped and the scale lowered, as for the original's loss)
    dcgan = tiny_dcgan(sess, tmp_path, precision=mode, initial_loss_scale=2.0 ** 6,
                       **PLUGGED[name])
    first, losses, changed = two_steps(dcgan, sess)
    check(name, first, losses, changed, [v.op.name for v in dcgan.all_vars])
    check_d_update_runs_every_pass(name, dcgan)
    if precision == "fp16":
      assert dcgan.precision.loss_scaling


TWO_REPLICAS = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[1] + "/tests")
import hardware
hardware.import_tensorflow()  # the process's start: oneDNN, TF1 graph behaviour
import tensorflow as tf2
cpu = tf2.config.list_physical_devices("CPU")[0]
tf2.config.set_logical_device_configuration(cpu, [tf2.config.LogicalDeviceConfiguration()] * 2)
import tensorflow.compat.v1 as tf
import cluster as cluster_module
from precision import session_config
import test_seams
from conftest import tiny_dcgan
import pathlib, tempfile
cluster = cluster_module.Cluster(cluster_module.parse_layout("cpu:0,cpu:1"))
result = {}
for name in sorted(test_seams.PLUGGED):
  with tf.Graph().as_default():
    sess = tf.Session(config=cluster.session_config(session_config()))
    tf.set_random_seed(1)
    dcgan = tiny_dcgan(sess, pathlib.Path(tempfile.mkdtemp()), cluster=cluster,
                       **test_seams.PLUGGED[name])
    assert dcgan.replication.num_replicas == 2
    first, losses, changed = test_seams.two_steps(dcgan, sess)
    test_seams.check(name, first, losses, changed, [v.op.name for v in dcgan.all_vars])
    test_seams.check_d_update_runs_every_pass(name, dcgan)
    result[name] = [float(l.d_loss) for l in losses]
# the towers ran as Python, as on one device: AutoGraph converted none of the project's code
result["converted"] = [m for m in sys.modules if m.startswith("__autograph_generated")]
print(json.dumps(result))
"""


def test_a_loss_or_optimizer_from_outside_trains_on_two_replicas():
  proc = subprocess.run([sys.executable, "-c", TWO_REPLICAS, PROJECT_DIR], stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result.pop("converted") == []
  assert sorted(result) == sorted(PLUGGED) and all(len(v) == 2 for v in result.values())
