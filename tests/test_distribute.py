"""Layers under tf.distribute (DESIGN.md 6): what several replicas need of ops.py.

Each test runs in a child Python: virtual CPU devices must be configured before TensorFlow's
runtime starts, which the rest of the suite has already done in this process.
"""
import json
import os
import subprocess
import sys

import numpy as np

from conftest import PROJECT_DIR

BATCH_NORM_ON_TWO_REPLICAS = r'''
import json, sys
sys.path.insert(0, sys.argv[1])
import hardware
hardware.configure()
import numpy as np
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
