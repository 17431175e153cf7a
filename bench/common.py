"""Shared by the benchmarks: the machine's measured fp32 matmul peak."""
import time

import numpy as np
import tensorflow.compat.v1 as tf


def matmul_peak_gflops(n=2048, repeats=10, dtype=tf.float32):
  """Best GFLOP/s of an n x n x n matmul in a Session on this machine (2 n^3 FLOPs each)."""
  with tf.Graph().as_default(), tf.Session() as sess:
    a = tf.Variable(np.random.RandomState(0).rand(n, n).astype(np.float32))
    b = tf.Variable(np.random.RandomState(1).rand(n, n).astype(np.float32))
    product = tf.matmul(tf.cast(a, dtype), tf.cast(b, dtype))
    # reduce to a scalar so fetching the result costs nothing
    op = tf.reduce_sum(tf.cast(product, tf.float32))
    sess.run(tf.global_variables_initializer())
    sess.run(op)  # warm-up
    best = float("inf")
    for _ in range(repeats):
      start = time.perf_counter()
      sess.run(op)
      best = min(best, time.perf_counter() - start)
  return 2.0 * n ** 3 / best / 1e9
