"""Several replicas in one process: ops.py's layers and the DCGAN on two devices.

Each test runs in a child Python: virtual CPU devices must be configured before TensorFlow's
runtime starts, which the rest of the suite has already done in this process.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import PROJECT_DIR

BATCH_NORM_ON_TWO_REPLICAS = r'''
import json, sys
sys.path.insert(0, sys.argv[1])
import hardware
hardware.import_tensorflow()  # the process's start: oneDNN, TF1 graph behaviour
import numpy as np
import pytest
import tensorflow as tf2
cpu = tf2.config.list_physical_devices("CPU")[0]
tf2.config.set_logical_device_configuration(cpu, [tf2.config.LogicalDeviceConfiguration()] * 2)
import ops
import tensorflow.compat.v1 as tf
rng = np.random.RandomState(0)
batches = (rng.randn(2, 4, 3, 3, 5) * 2 + 1).astype(np.float32)  # one batch per replica
with tf.Graph().as_default():
  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  x = tf.constant(batches)
  with strategy.scope():
    def replica():
      index = tf.distribute.get_replica_context().replica_id_in_sync_group
      return ops.batch_norm(name="g_bn1")(tf.gather(x, index), train=True)
    outputs = strategy.experimental_local_results(strategy.extended.call_for_each_replica(replica))
  variables = {v.op.name: v for v in tf.global_variables()}
  with tf.Session() as sess:
    sess.run(tf.global_variables_initializer())
    sess.run(outputs)
    result = {name: [sess.run(t).tolist() for t in strategy.experimental_local_results(v)]
              for name, v in variables.items()}
print(json.dumps(result))
'''


def test_batch_norm_moving_statistics_are_averaged_and_identical_across_replicas():
  proc = subprocess.run([sys.executable, "-c", BATCH_NORM_ON_TWO_REPLICAS, PROJECT_DIR],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  # single-device checkpoint names: one variable per name, a copy per replica
  assert sorted(result) == ["g_bn1/beta", "g_bn1/gamma", "g_bn1/moving_mean",
                            "g_bn1/moving_variance"]
  batches = (np.random.RandomState(0).randn(2, 4, 3, 3, 5) * 2 + 1).astype(np.float32)
  n = 4 * 3 * 3
  means = batches.mean(axis=(1, 2, 3))
  variances = batches.var(axis=(1, 2, 3)) * n / (n - 1.0)  # Bessel-corrected, as the fused op
  for name, want in (("g_bn1/moving_mean", 0.1 * means.mean(0)),
                     ("g_bn1/moving_variance", 0.9 + 0.1 * variances.mean(0))):
    first, second = (np.array(copy) for copy in result[name])
    np.testing.assert_array_equal(first, second)  # identical on both replicas
    np.testing.assert_allclose(first, want, rtol=1e-5, atol=1e-6)  # the replicas' mean update


# --------------------------------------------------------------------------------------------
# The DCGAN on two replicas of one process (MirroredStrategy over two virtual CPUs)

DCGAN_ON_TWO_REPLICAS = r'''
import json, sys
sys.path.insert(0, sys.argv[1])
conditional = sys.argv[2] == "conditional"
import hardware
hardware.import_tensorflow()  # the process's start: oneDNN, TF1 graph behaviour
import numpy as np
import pytest
import tensorflow as tf2
cpu = tf2.config.list_physical_devices("CPU")[0]
tf2.config.set_logical_device_configuration(cpu, [tf2.config.LogicalDeviceConfiguration()] * 2)
import tensorflow.compat.v1 as tf
import cluster as cluster_module
import ops
from model import DCGAN
from precision import session_config

B = 4
kwargs = dict(batch_size=B, sample_num=B, output_height=16, output_width=16, gf_dim=4, df_dim=4,
              gfc_dim=16, dfc_dim=16, z_dim=8, seed=5, learning_rate=0.01)
if conditional:
  # and with the large linear layers' weight gradients from all-gathered factors (as several
  # workers compute them): dfc_dim 32 makes d_h2_lin's Matrix (234 x 32) larger than them
  kwargs.update(y_dim=10, c_dim=1, dataset_name="mnist", dfc_dim=32)
else:
  kwargs.update(c_dim=3, dataset_name="faces", input_height=16, input_width=16)
rng = np.random.RandomState(1)
c_dim = kwargs["c_dim"]
images = rng.uniform(-1, 1, (2 * B, 16, 16, c_dim)).astype(np.float32)
labels = np.eye(10, dtype=np.float32)[rng.randint(0, 10, 2 * B)] if conditional else None
z = rng.uniform(-1, 1, (2 * B, 8)).astype(np.float32)
result = {}

# One device: the names, and the gradients of each replica's half of the batch.
with tf.Graph().as_default():
  sess = tf.Session(config=session_config())
  single = DCGAN(sess, **kwargs)
  result["single_names"] = sorted(v.op.name for v in single.all_vars)
  # nothing of replication or coordination in one device's graph
  result["single_foreign"] = sorted({n.op for n in tf.get_default_graph().as_graph_def().node
                                     if n.op.startswith("Collective") or n.name.startswith(
                                         ("cluster/", "replica_"))})
  grads = tf.gradients(single.d_loss, single.d_vars)
  sess.run(single.init_op)
  initial = sess.run({v.op.name: v for v in single.all_vars})  # one run: one executor to build

# Two replicas, starting from the same values.
layout = cluster_module.parse_layout("cpu:0,cpu:1")
cluster = cluster_module.Cluster(layout, gathers=conditional)
with tf.Graph().as_default():
  sess = tf.Session(config=cluster.session_config(session_config()))
  model = DCGAN(sess, cluster=cluster, **kwargs)
  result["replicas"] = model.replication.num_replicas
  result["gathered"] = sorted(model.gathered)
  result["names"] = sorted(v.op.name for v in model.all_vars)
  # the sampler and D's inference pass: built once, not in every replica's tower
  def scope(name):  # "/generator_1" outside the towers, "generator" in replica 1's tower
    parts = name.split("/")
    inner = parts[1] if parts[0].startswith("replica_") and len(parts) > 1 else "/" + parts[0]
    return inner if inner.lstrip("/").startswith(("generator", "discriminator")) else None
  result["network_scopes"] = sorted({scope(n.name) for n in
                                     tf.get_default_graph().as_graph_def().node} - {None})
  sess.run(model.init_op)
  copies = [(copy, v.op.name) for v in model.all_vars for copy in model.replication.local_copies(v)]
  sess.run([copy.initializer for copy, _ in copies],
           {copy.initializer.inputs[1]: initial[name] for copy, name in copies})
  feed = model.feed(z, labels, images)
  sess.run(model.d_optim, feed)  # one D update
  after_one = sess.run({v.op.name: v for v in model.all_vars})
  for _ in range(3):
    model.train_step(feed)
  values = sess.run({v.op.name: list(model.replication.local_copies(v)) for v in model.all_vars})
  result["differ"] = [name for name, (first, second) in values.items()
                      if not np.array_equal(first, second)]
  # batch norm's moving averages were updated (in the runs that computed them), on all copies
  result["moving_unchanged"] = [name for name in values if "moving_" in name
                                and np.array_equal(values[name][0], initial[name])]
  result["moving_count"] = sum("moving_" in v.op.name for v in model.all_vars)
  result["sampler_shape"] = list(sess.run(model.sampler, model.feed(z[:3], None if labels is None else labels[:3])).shape)

# Each replica's gradients on one device, from the same initial values.
with tf.Graph().as_default():
  sess = tf.Session(config=session_config())
  single = DCGAN(sess, **kwargs)
  grads = tf.gradients(single.d_loss, single.d_vars)
  sess.run(single.init_op)
  sess.run([v.initializer for v in single.all_vars],
           {v.initializer.inputs[1]: initial[v.op.name] for v in single.all_vars})
  per_replica = []
  for r in range(2):
    part = slice(r * B, (r + 1) * B)
    per_replica.append(sess.run(grads, single.feed(z[part], None if labels is None else labels[part], images[part])))
  d_names = [v.op.name for v in single.d_vars]

lr, b1, b2, eps = 0.01, 0.5, 0.999, 1e-8
means = [(per_replica[0][i] + per_replica[1][i]) / 2.0 for i in range(len(d_names))]  # the mean
top = max(float(np.max(np.abs(g))) for g in means)  # errors are relative to the largest gradient
worst = {"m": 0.0, "v": 0.0, "var": 0.0, "m_if_replica0_only": 0.0}
for name, g, g0 in zip(d_names, means, [g for g in per_replica[0]]):
  m, v = (1 - b1) * g, (1 - b2) * g * g
  want = initial[name] - lr * np.sqrt(1 - b2) / (1 - b1) * m / (np.sqrt(v) + eps)
  worst["m"] = max(worst["m"], float(np.max(np.abs(after_one[name + "/Adam"] - m))) / top)
  worst["v"] = max(worst["v"], float(np.max(np.abs(after_one[name + "/Adam_1"] - v))) / top ** 2)
  clear = np.abs(g) > 1e-3 * top  # where the sign of the gradient is not float32 noise
  worst["var"] = max(worst["var"], float(np.max(np.abs(after_one[name] - want)[clear], initial=0)))
  # replica 0's own gradient alone would have given Adam's slot (1 - b1) * g0
  worst["m_if_replica0_only"] = max(worst["m_if_replica0_only"], float(np.max(np.abs(
      after_one[name + "/Adam"] - (1 - b1) * g0))) / top)
result["worst"] = worst
print(json.dumps(result))
'''


def run_child(script, *args, timeout=600):
  proc = subprocess.run([sys.executable, "-c", script, PROJECT_DIR] + list(args),
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("model", ["unconditional", "conditional"])
def test_two_replicas_average_gradients_stay_identical_and_keep_single_device_names(model):
  result = run_child(DCGAN_ON_TWO_REPLICAS, model)
  assert result["replicas"] == 2
  if model == "conditional":  # D's and G's large Matrix gradients came from gathered factors
    assert {"discriminator/d_h2_lin/Matrix:0", "generator/g_h1_lin/Matrix:0"} <= set(
        result["gathered"]), result["gathered"]
  else:
    assert result["gathered"] == []
  assert result["names"] == result["single_names"]  # checkpoints: the single-device names
  assert not any("replica" in name for name in result["names"])
  assert result["single_foreign"] == []
  # replica 0's tower: G, D(real), D(G(z)); replica 1's the same under replica_1/; the sampler
  # (generator_1) and D's inference pass (discriminator_2) once, outside both
  assert result["network_scopes"] == ["/discriminator", "/discriminator_1", "/discriminator_2",
                                      "/generator", "/generator_1", "discriminator",
                                      "discriminator_1", "generator"], result["network_scopes"]
  assert result["differ"] == []  # after a D update and three iterations, every copy is equal
  assert result["moving_count"] >= 10 and result["moving_unchanged"] == []
  assert result["sampler_shape"][0] == 3  # the sampler takes any number of z
  worst = result["worst"]
  # one D update = Adam applied to the mean of the two replicas' gradients
  assert worst["m"] < 1e-4, worst
  assert worst["v"] < 1e-3, worst
  assert worst["var"] < 1e-6, worst
  assert worst["m_if_replica0_only"] > 1e-2, worst  # the test can tell the mean from one replica
