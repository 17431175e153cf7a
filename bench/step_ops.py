"""Where a training iteration's op time goes, by TensorFlow op, and what a precision's casts cost.

    python bench/step_ops.py [--config celebA|mnist] [--precision fp32|bf16]
                             [--kernels PLAN[+FIELD=VALUE...]] [--steps 3]

Builds the real model as bench/train_speed.py does (batch 64, the original's filter counts,
synthetic batches), runs --warmup iterations, then traces --steps more (RunMetadata with
FULL_TRACE): each run of an iteration (step.UPDATES: one D update, then two G updates) fetches
what step.run_iteration fetches.  Prints, per run, the op time summed over the threads that
ran at once beside the run's wall time, the op types that take most of it, and the casts a
precision rewrite added (bf16: their names end in AutoMixedPrecision): those of the weights
(a Cast of a variable's value, made once per run for all the run's kernels that
use the weight) apart from the rest (activations and gradients).  Tracing slows the step a
little, so the times are for comparing rows; bench/train_speed.py gives the speed.  Appends
one JSON line to bench/results.jsonl.
"""
import argparse
import collections
import sys
import time

# common first: the project on the path, oneDNN decided before TensorFlow loads
from common import (RESULTS, add_model_arguments, append_result, kernel_plan, kernels_label,
                    machine, print_machine, warmed_up_model)
import numpy as np  # noqa: E402
import tensorflow.compat.v1 as tf  # noqa: E402
from precision import session_config  # noqa: E402
from step import LABELS  # noqa: E402
from utils import UserError  # noqa: E402

REWRITE_CAST = "AutoMixedPrecision"  # in the name of every cast the precision rewrite adds


def traced_runs(model, feed, steps):
  """[(network, seconds, RunMetadata)] of each run of `steps` iterations, in order."""
  options = tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE, output_partition_graphs=True)
  runs = []
  for _ in range(steps):
    for net, count in model.train_ops.updates:
      op = getattr(model.train_ops, net)
      fetches = {"update": op.update, "scaling": op.scaling, "losses": op.losses,
                 "summaries": [op.summary]}
      for _ in range(count):
        metadata = tf.RunMetadata()
        start = time.perf_counter()
        model.sess.run(fetches, feed, options=options, run_metadata=metadata)
        runs.append((net, time.perf_counter() - start, metadata))
  return runs


VARIABLES = ("VariableV2", "VarHandleOp")


def variable_values(metadata):
  """The names of the nodes whose output is a variable's value, in the graphs a run executed:
  a reference variable itself (grappler's arithmetic optimizer casts it without its `read`),
  its `read` Identity, a resource variable's ReadVariableOp."""
  nodes = {node.name: node for graph in metadata.partition_graphs for node in graph.node}
  source = lambda node: nodes.get(node.input[0].split(":")[0].lstrip("^")) if node.input else None
  return {name for name, node in nodes.items()
          if node.op in VARIABLES + ("ReadVariableOp",)
          or (node.op == "Identity" and getattr(source(node), "op", None) in VARIABLES)}


def cast_inputs(metadata):
  """{Cast node's name: its input node's name} in the graphs a run executed."""
  return {node.name: node.input[0].split(":")[0].lstrip("^")
          for graph in metadata.partition_graphs for node in graph.node if node.op == "Cast"}


def run_profile(metadata):
  """{'op_ms': {op type: ms}, 'weight_casts': n, 'weight_cast_ms': {network: ms},
  'other_cast_ms': ms} of one run: op time summed over threads; the rewrite's casts of
  variables' values (by the variable's first scope: discriminator, generator), and its others."""
  reads, inputs = variable_values(metadata), cast_inputs(metadata)
  op_ms, by_network, weights, other_ms = collections.Counter(), collections.Counter(), 0, 0.0
  for device in metadata.step_stats.dev_stats:
    for node in device.node_stats:
      ms = (node.op_end_rel_micros - node.op_start_rel_micros) / 1e3
      label = node.timeline_label
      kind = label.split(" = ", 1)[1].split("(", 1)[0] if " = " in label else node.node_name
      if kind.startswith("_SOURCE"):
        continue
      op_ms[kind] += ms
      if kind == "Cast" and REWRITE_CAST in node.node_name:
        if inputs.get(node.node_name) in reads:
          weights += 1
          by_network[inputs[node.node_name].split("/")[0]] += ms
        else:
          other_ms += ms
  return {"op_ms": dict(op_ms), "weight_casts": weights, "weight_cast_ms": dict(by_network),
          "other_cast_ms": other_ms}


def summarize(runs, steps):
  """[(run label, wall ms, profile with each figure per iteration)] of traced_runs' runs:
  each run of an iteration averaged over the `steps` iterations."""
  per_iteration = len(runs) // steps
  summary = []
  for index in range(per_iteration):
    taken = runs[index::per_iteration]
    profiles = [run_profile(metadata) for _, _, metadata in taken]
    op_ms, by_network = collections.Counter(), collections.Counter()
    for profile in profiles:
      op_ms.update(profile["op_ms"])
      by_network.update(profile["weight_cast_ms"])
    summary.append(("%s %d" % (LABELS[taken[0][0]], index + 1),
                    1e3 * float(np.median([seconds for _, seconds, _ in taken])),
                    {"op_ms": {k: v / steps for k, v in op_ms.items()},
                     "weight_casts": max(p["weight_casts"] for p in profiles),
                     "weight_cast_ms": {k: v / steps for k, v in by_network.items()},
                     "other_cast_ms": sum(p["other_cast_ms"] for p in profiles) / steps}))
  return summary


def print_summary(summary, top):
  """Per run: its op time beside its wall time, its `top` op types, its casts."""
  for label, wall_ms, profile in summary:
    total = sum(profile["op_ms"].values())
    print("\n%s: %.1f ms of ops (summed over threads) in %.1f ms wall" % (label, total, wall_ms))
    for kind, ms in sorted(profile["op_ms"].items(), key=lambda item: -item[1])[:top]:
      print("  %-34s %7.2f ms %5.1f%%" % (kind, ms, 100 * ms / total))
    weights_ms = sum(profile["weight_cast_ms"].values())
    print("  the rewrite's casts: %d weights, %.2f ms (%.1f%%%s); others %.2f ms (%.1f%%)" % (
        profile["weight_casts"], weights_ms, 100 * weights_ms / total,
        "".join(", %s's %.2f" % item for item in sorted(profile["weight_cast_ms"].items())),
        profile["other_cast_ms"], 100 * profile["other_cast_ms"] / total))


def parse_args():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  add_model_arguments(parser)
  parser.add_argument("--steps", type=int, default=3, help="traced iterations [3]")
  parser.add_argument("--warmup", type=int, default=3, help="untraced iterations first [3]")
  parser.add_argument("--top", type=int, default=12, help="op types shown per run [12]")
  parser.add_argument("--results", default=RESULTS)
  args = parser.parse_args()
  if args.steps < 1:
    parser.error("--steps must be at least 1")
  return args


def main():
  args = parse_args()
  try:
    plan = kernel_plan(args.kernels, args.precision)
    config = session_config(args.precision, plan=plan)
    with tf.Graph().as_default(), tf.Session(config=config) as sess:
      model, feed = warmed_up_model(sess, args)
      summary = summarize(traced_runs(model, feed, args.steps), args.steps)
      weights = len(tf.trainable_variables())
  except UserError as err:
    print("error: %s" % err, file=sys.stderr)
    return 1
  described = machine(plan)
  print_machine(described, kernels=kernels_label(plan, args.kernels))
  print("model: %s, batch %d, %s; %d iteration(s) traced after %d, each run's figures per "
        "iteration" % (args.config, args.batch_size, args.precision, args.steps, args.warmup))
  print_summary(summary, args.top)
  append_result(args.results, {
      "bench": "step_ops", "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": described,
      "config": {"model": args.config, "precision": args.precision,
                 "batch_size": args.batch_size, "filters": args.filters,
                 "kernels": kernels_label(plan, args.kernels), "steps": args.steps,
                 "warmup": args.warmup, "trainable_variables": weights},
      "runs": [dict(profile, run=label, wall_ms=round(wall_ms, 2),
                    op_ms={k: round(v, 3) for k, v in profile["op_ms"].items()})
               for label, wall_ms, profile in summary]})
  return 0


if __name__ == "__main__":
  sys.exit(main())
