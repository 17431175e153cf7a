"""Which oneDNN kernels the training step runs, in which layouts, and for how long.

    python bench/onednn_kernels.py [--config celebA|mnist] [--precision fp32|bf16]
                                   [--kernels auto|...] [--steps 1]

Builds the real model as bench/train_speed.py does (batch 64, the original's
filter counts, synthetic batches), runs --warmup iterations of
DCGAN.train_step, then --steps more with oneDNN's verbose mode on
(ONEDNN_VERBOSE=1, set here before TensorFlow loads; its lines are captured,
not shown) and sums what they say per kind of execution: the primitive
(convolution, matmul, reorder, batch normalization, ...), its propagation
(forward_training, backward_data, backward_weights), the implementation oneDNN
chose, the problem's shape and its memory's data types and layouts.

An implementation's name says what runs: AMX (``avx512_core_amx``), a brgemm
kernel (``brg...``), an older direct JIT kernel (``jit:avx512_core``,
``jit_bf16:avx512_core_bf16``), a GEMM (``gemm:...``) or a reference loop
(``ref:...``).  Reorders are the layout conversions between kernels.  Ops that
TensorFlow runs with its own kernels do not appear.  Verbose mode slows the
step, so the times are for comparing rows, not a speed figure
(bench/train_speed.py gives that).  Prints the rows that make up most of the
time, the time per implementation, and appends one JSON line to
bench/results.jsonl.
"""
import argparse
import collections
import contextlib
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["ONEDNN_VERBOSE"] = "1"  # oneDNN reads it once, when it first runs
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hardware  # noqa: E402

hardware.configure()  # as main.py does: oneDNN decided before TensorFlow loads

import numpy as np  # noqa: E402
import tensorflow.compat.v1 as tf  # noqa: E402

tf.get_logger().setLevel("ERROR")

from common import (CONFIGS, RESULTS, append_result, machine, print_machine,  # noqa: E402
                    synthetic_feed)
from model import DCGAN  # noqa: E402
from precision import session_config  # noqa: E402
from utils import UserError  # noqa: E402

# What one verbose line says about an execution, without its time.
Execution = collections.namedtuple(
    "Execution", "primitive propagation implementation problem memory")

MARK = "#dcgan: the traced iterations start here"


def parse_exec(line):
  """(Execution, milliseconds) of one ONEDNN_VERBOSE 'exec' line; None for any other line.

  The line is oneDNN's: ``onednn_verbose[,v1,primitive],exec,cpu,<primitive>,
  <implementation>,<propagation>,<memory descriptors>,<attributes>,<auxiliary>,
  <problem>,<milliseconds>``; a memory descriptor is ``name:type:flags:kind:layout:...``.
  """
  fields = line.strip().split(",")
  if not fields[0].startswith("onednn_verbose") or "exec" not in fields:
    return None
  at = fields.index("exec")
  if len(fields) < at + 9:
    return None
  try:
    milliseconds = float(fields[-1])
  except ValueError:
    return None
  memory = []
  for descriptor in fields[at + 5].split():
    parts = descriptor.split(":")
    if len(parts) > 4 and parts[1] != "undef":
      memory.append("%s %s %s" % (parts[0], parts[1], parts[4]))
  return Execution(fields[at + 2], fields[at + 4], fields[at + 3], fields[-2],
                   ", ".join(memory)), milliseconds


def summarize(lines, iterations):
  """[(Execution, ms per iteration, calls per iteration)] of the exec lines among `lines`
  over `iterations` iterations, the longest first."""
  spent, calls = collections.Counter(), collections.Counter()
  for line in lines:
    parsed = parse_exec(line)
    if parsed:
      spent[parsed[0]] += parsed[1]
      calls[parsed[0]] += 1
  return [(execution, ms / iterations, calls[execution] / iterations)
          for execution, ms in spent.most_common()]


@contextlib.contextmanager
def captured_stdout():
  """Send this process's file descriptor 1 (where oneDNN prints) to a temporary file; yields
  a list that holds the file's lines once the block ends."""
  lines = []
  sys.stdout.flush()
  saved = os.dup(1)
  with tempfile.TemporaryFile(mode="w+") as capture:
    os.dup2(capture.fileno(), 1)
    try:
      yield lines
    finally:
      sys.stdout.flush()
      os.dup2(saved, 1)
      os.close(saved)
      capture.seek(0)
      lines.extend(capture.read().splitlines())


def trace(args, plan_name):
  """(the model's plan, verbose lines of the traced iterations, their seconds): the real
  model built and warmed up, then args.steps iterations traced."""
  config = session_config(args.precision, False, 0, 0, hardware.kernel_plan(args.kernels))
  with captured_stdout() as lines:
    with tf.Graph().as_default(), tf.Session(config=config) as sess:
      model = DCGAN(sess, batch_size=args.batch_size, sample_num=args.batch_size,
                    gf_dim=args.filters, df_dim=args.filters, gfc_dim=args.fc, dfc_dim=args.fc,
                    dataset_name=args.config, seed=0, precision=args.precision,
                    kernels=plan_name, **CONFIGS[args.config])
      sess.run(model.init_op)
      feed = synthetic_feed(model, args.batch_size, np.random.RandomState(0))
      for _ in range(args.warmup):
        model.train_step(feed)
      print(MARK, flush=True)
      start = time.perf_counter()
      for _ in range(args.steps):
        model.train_step(feed)
      seconds = time.perf_counter() - start
  traced = lines[next(i for i, line in enumerate(lines) if line == MARK) + 1:]
  return model.plan, traced, seconds


def print_rows(rows, seconds_per_iteration, share_shown):
  """The rows that make up share_shown of the oneDNN time, then the time per implementation."""
  total = sum(ms for _, ms, _ in rows)
  print("oneDNN: %.1f ms per iteration in %d kinds of execution, summed over kernels that may "
        "run at once (the step: %.1f ms with verbose on)"
        % (total, len(rows), 1e3 * seconds_per_iteration))
  print("%8s %6s %5s  %-19s %-17s %-30s %s" % ("ms/iter", "share", "calls", "primitive",
                                              "propagation", "implementation", "problem; memory"))
  shown = 0.0
  for index, (execution, ms, calls) in enumerate(rows):
    if shown >= share_shown * total:
      print("(%d more, %.1f%% of the time)" % (len(rows) - index, 100 * (1 - shown / total)))
      break
    shown += ms
    print("%8.2f %5.1f%% %5g  %-19s %-17s %-30s %s; %s" % (
        ms, 100 * ms / total, calls, execution.primitive, execution.propagation,
        execution.implementation, execution.problem, execution.memory))
  by_implementation = collections.Counter()
  for execution, ms, _ in rows:
    by_implementation["%s %s" % (execution.primitive, execution.implementation)] += ms
  print("per implementation: " + ", ".join("%s %.1f%%" % (name, 100 * ms / total)
                                           for name, ms in by_implementation.most_common()))


def parse_args():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--config", choices=sorted(CONFIGS), default="celebA")
  parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
  parser.add_argument("--kernels", choices=hardware.KERNEL_CHOICES,
                      default=hardware.DEFAULT_KERNELS,
                      help="kernel plan (hardware.py) [auto: this machine's]")
  parser.add_argument("--steps", type=int, default=1, help="traced iterations [1]")
  parser.add_argument("--warmup", type=int, default=2, help="untraced iterations first [2]")
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--filters", type=int, default=64, help="gf_dim = df_dim [64]")
  parser.add_argument("--fc", type=int, default=1024, help="gfc_dim = dfc_dim (mnist) [1024]")
  parser.add_argument("--share", type=float, default=0.95,
                      help="print the rows that make up this share of the time [0.95]")
  parser.add_argument("--results", default=RESULTS)
  return parser.parse_args()


def main():
  args = parse_args()
  try:
    plan, lines, seconds = trace(args, args.kernels)
  except UserError as err:
    print("error: %s" % err, file=sys.stderr)
    return 1
  rows = summarize(lines, args.steps)
  if not rows:
    print("error: oneDNN reported no kernel: it is off here (TF_ENABLE_ONEDNN_OPTS=0, or not "
          "an x86 CPU), so TensorFlow's own kernels ran.", file=sys.stderr)
    return 1
  described = machine(plan)
  print_machine(described)
  print("model: %s, batch %d, %s; %d iteration(s) traced after %d" % (
      args.config, args.batch_size, args.precision, args.steps, args.warmup))
  print_rows(rows, seconds / args.steps, args.share)
  append_result(args.results, {
      "bench": "onednn_kernels", "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
      "machine": described,
      "config": {"model": args.config, "precision": args.precision,
                 "batch_size": args.batch_size, "filters": args.filters,
                 "kernel_plan": plan.name, "steps": args.steps, "warmup": args.warmup},
      "seconds_per_iteration_verbose": round(seconds / args.steps, 4),
      "executions": [dict(execution._asdict(), ms_per_iteration=round(ms, 3),
                          calls_per_iteration=calls) for execution, ms, calls in rows]})
  return 0


if __name__ == "__main__":
  sys.exit(main())
