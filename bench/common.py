"""Shared by the benchmarks: the machine's measured matmul peak, and where results go."""
import json
import os
import time

import tensorflow.compat.v1 as tf

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results.jsonl")


def append_result(path, result):
  """Append one benchmark result as a JSON line to path and say so."""
  with open(path, "a") as f:
    f.write(json.dumps(result) + "\n")
  print("appended to %s" % path)


def matmul_peak_gflops(sizes=(2048, 4096), seconds=1.5, dtype=tf.float32):
  """Best GFLOP/s of an n x n x n matmul in a Session on this machine (2 n^3 FLOPs each).

  The operands are variables already in `dtype` (no cast is timed) and only one
  row of the product is fetched, so the figure is the matmul alone; the best
  over the sizes and over the repeats (about `seconds` per size) is the peak.
  """
  best_rate = 0.0
  for n in sizes:
    with tf.Graph().as_default(), tf.Session() as sess:
      a = tf.Variable(tf.cast(tf.random.uniform([n, n], seed=1), dtype))
      b = tf.Variable(tf.cast(tf.random.uniform([n, n], seed=2), dtype))
      op = tf.reduce_sum(tf.cast(tf.matmul(a, b)[:1], tf.float32))
      sess.run(tf.global_variables_initializer())
      sess.run(op)  # warm-up
      best, spent = float("inf"), 0.0
      while spent < seconds or best == float("inf"):
        start = time.perf_counter()
        sess.run(op)
        elapsed = time.perf_counter() - start
        best, spent = min(best, elapsed), spent + elapsed
      best_rate = max(best_rate, 2.0 * n ** 3 / best / 1e9)
  return best_rate
