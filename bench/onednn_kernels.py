"""Which oneDNN kernels the training step runs, in which layouts, and for how long.

    python bench/onednn_kernels.py [--config celebA|mnist] [--precision fp32|bf16]
                                   [--kernels PLAN[+FIELD=VALUE...]] [--steps 1]

In a child Python with oneDNN's verbose mode on (ONEDNN_VERBOSE=2; what oneDNN
prints goes into the child's pipe, not into this output), builds the real model
as bench/train_speed.py does (batch 64, the original's filter counts, synthetic
batches), runs --warmup iterations of DCGAN.train_step, then --steps more, and
sums what oneDNN says about those per kind of execution: the primitive
(convolution, matmul, reorder, batch normalization, ...), its propagation
(forward_training, backward_data, backward_weights), the implementation oneDNN
chose, the problem's shape and its memory's data types and layouts; and how many
primitives oneDNN created during those iterations, compiled or from its
primitive cache (a compilation after warm-up is JIT time inside a step).

An implementation's name says what runs: AMX (``avx10_1_512_amx`` in oneDNN 3.7, the
version TensorFlow 2.21 links; ``avx512_core_amx`` in older ones), a brgemm
kernel (``brg...``), an older direct JIT kernel (``jit:avx512_core``,
``jit_bf16:avx512_core_bf16``), a GEMM (``gemm:...``) or a reference loop
(``ref:...``).  Reorders are the layout conversions between kernels.  Ops that
TensorFlow runs with its own kernels appear only where those call oneDNN's
GEMM (``gemm_api``: with oneDNN off, Eigen's convolutions and matrix products
do).  Verbose mode slows the step, so the times are for comparing rows, not a
speed figure (bench/train_speed.py gives that).  Prints the rows that make up
most of the time, the time per implementation, and appends one JSON line to
bench/results.jsonl.
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import time

# common first: the project on the path, oneDNN decided before TensorFlow loads
from common import (RESULTS, add_model_arguments, append_result, kernel_plan, kernels_label,
                    machine, print_machine, warmed_up_model)
import hardware  # noqa: E402
import tensorflow.compat.v1 as tf  # noqa: E402
from precision import session_config  # noqa: E402
from utils import UserError  # noqa: E402

# What one verbose line says about an execution, without its time.
Execution = collections.namedtuple(
    "Execution", "primitive propagation implementation problem memory")

# What the child process (--child) prints around oneDNN's lines of the traced iterations.
MARK = "#dcgan: the traced iterations start here"
RESULT = "#dcgan: traced "


# The verbose events read here: a primitive executed, created by compiling it (oneDNN's
# primitive cache missed), created from that cache.
EXEC, COMPILED, FROM_CACHE = "exec", "create:cache_miss", "create:cache_hit"


def parse_line(line):
  """(event, Execution, milliseconds) of one ONEDNN_VERBOSE line of an event of EXEC, COMPILED
  or FROM_CACHE; None for any other line.

  The line is oneDNN's: ``onednn_verbose[,v1,primitive],<event>,cpu,<primitive>,
  <implementation>,<propagation>,<memory descriptors>,<attributes>,<auxiliary>,
  <problem>,<milliseconds>``; a memory descriptor is ``name:type:flags:kind:layout:...``.
  """
  fields = line.strip().split(",")
  events = [field for field in fields if field in (EXEC, COMPILED, FROM_CACHE)]
  if (not fields[0].startswith("onednn_verbose") or len(events) != 1
      or line.count("onednn_verbose") != 1):  # two threads' lines mixed into one: unreadable
    return None
  at = fields.index(events[0])
  if len(fields) < at + 9:
    return None
  try:
    milliseconds = float(fields[-1])
  except ValueError:
    return None
  memory = [described for described in map(describe_memory, fields[at + 5].split())
            if described]
  return events[0], Execution(fields[at + 2], fields[at + 4], fields[at + 3], fields[-2],
                              ", ".join(memory)), milliseconds


def parse_exec(line):
  """(Execution, milliseconds) of one ONEDNN_VERBOSE 'exec' line; None for any other line."""
  parsed = parse_line(line)
  return parsed[1:] if parsed and parsed[0] == EXEC else None


def describe_memory(descriptor):
  """'name type layout' of one memory descriptor in a verbose line, '' for an unused one:
  ``src:f32::blocked:acdb::f0`` (primitives) or ``src_f32::blocked:ab:f0`` (the GEMM API that
  TensorFlow's own kernels call)."""
  parts = descriptor.split(":")
  if len(parts) > 3 and parts[1] == "" and "_" in parts[0]:  # the GEMM API's form
    parts = parts[0].split("_", 1) + parts[1:]
  if len(parts) > 4 and parts[1] != "undef":
    return "%s %s %s" % (parts[0], parts[1], parts[4])
  return ""


def summarize(lines, iterations):
  """([(Execution, ms per iteration, calls per iteration)] of the exec lines among `lines`
  over `iterations` iterations, the longest first; how many exec lines were unreadable)."""
  spent, calls, unreadable = collections.Counter(), collections.Counter(), 0
  for line in lines:
    parsed = parse_exec(line)
    if parsed:
      spent[parsed[0]] += parsed[1]
      calls[parsed[0]] += 1
    elif ",exec," in line:
      unreadable += 1
  return [(execution, ms / iterations, calls[execution] / iterations)
          for execution, ms in spent.most_common()], unreadable


def creations(lines, iterations):
  """What oneDNN created among `lines` of `iterations` iterations: {'compiled_per_iteration',
  'from_cache_per_iteration', 'compiled': [what was compiled, once each]}.  After warm-up a
  primitive compiled during a step is JIT compilation in the step's time (its cache holds too
  few, or a shape changed); one created from the cache costs microseconds (TensorFlow asks
  again for some primitives at every run)."""
  counts, compiled = collections.Counter(), []
  for line in lines:
    parsed = parse_line(line)
    if parsed and parsed[0] != EXEC:
      counts[parsed[0]] += 1
      if parsed[0] == COMPILED:
        compiled.append("%s %s %s %s" % (parsed[1].primitive, parsed[1].propagation,
                                          parsed[1].implementation, parsed[1].problem))
  return {"compiled_per_iteration": counts[COMPILED] / iterations,
          "from_cache_per_iteration": counts[FROM_CACHE] / iterations,
          "compiled": list(dict.fromkeys(compiled))}


def trace(args):
  """In the child process: the real model built and warmed up, then args.steps iterations
  run after MARK, so that oneDNN's lines for them follow it; then RESULT and a JSON object:
  the plan's name and the traced iterations' seconds."""
  config = session_config(args.precision, False, 0, 0, kernel_plan(args.kernels, args.precision))
  with tf.Graph().as_default(), tf.Session(config=config) as sess:
    model, feed = warmed_up_model(sess, args)
    print(MARK, flush=True)
    start = time.perf_counter()
    for _ in range(args.steps):
      model.train_step(feed)
    seconds = time.perf_counter() - start
  print(RESULT + json.dumps({"plan": model.plan.name, "seconds": seconds}), flush=True)


def traced_in_child(argv, timeout=3600):
  """(plan name, oneDNN's lines of the traced iterations, their seconds, (oneDNN on, its ISA)
  as hardware.onednn_reported reads the child's whole output), from a child Python
  running this script with --child and ONEDNN_VERBOSE=2 (executions and creations; oneDNN
  reads it once, when it first runs): every line oneDNN prints goes into the child's pipe,
  none into this output.
  Raises UserError with the child's error line if it fails."""
  proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child"] + argv,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                        timeout=timeout, env=dict(os.environ, ONEDNN_VERBOSE="2"))
  lines = proc.stdout.splitlines()
  results = [line for line in lines if line.startswith(RESULT)]
  if proc.returncode or MARK not in lines or not results:
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    raise UserError(errors[-1][len("error: "):] if errors else
                    "the traced run failed (exit code %d): %s"
                    % (proc.returncode, proc.stderr.strip()[-2000:]))
  result = json.loads(results[-1][len(RESULT):])
  traced = lines[lines.index(MARK) + 1:lines.index(results[-1])]
  return result["plan"], traced, result["seconds"], hardware.onednn_reported(lines)


def print_creations(created):
  """One line (and one per compiled primitive, up to five): what creations() found."""
  print("primitives created per iteration: %g compiled, %g from oneDNN's primitive cache%s" % (
      created["compiled_per_iteration"], created["from_cache_per_iteration"],
      ": compiling after warm-up costs the step JIT time" if created["compiled"] else
      " (after warm-up nothing is compiled in the step)"))
  for described in created["compiled"][:5]:
    print("  compiled: %s" % described)


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
  add_model_arguments(parser)
  parser.add_argument("--steps", type=int, default=1, help="traced iterations [1]")
  parser.add_argument("--warmup", type=int, default=2, help="untraced iterations first [2]")
  parser.add_argument("--share", type=float, default=0.95,
                      help="print the rows that make up this share of the time [0.95]")
  parser.add_argument("--results", default=RESULTS)
  parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  return parser.parse_args()


def main():
  args = parse_args()
  try:
    plan = kernel_plan(args.kernels, args.precision)  # a spec it cannot build: said here
    if args.child:
      trace(args)
      return 0
    plan_name, lines, seconds, onednn = traced_in_child(sys.argv[1:])
  except UserError as err:
    print("error: %s" % err, file=sys.stderr)
    return 1
  rows, unreadable = summarize(lines, args.steps)
  if not rows:
    print("error: oneDNN reported no kernel: it is off here (TF_ENABLE_ONEDNN_OPTS=0, or not "
          "an x86 CPU), so TensorFlow's own kernels ran.", file=sys.stderr)
    return 1
  described = machine(plan, onednn)
  print_machine(described, kernels=kernels_label(plan, args.kernels))
  print("model: %s, batch %d, %s; %d iteration(s) traced after %d" % (
      args.config, args.batch_size, args.precision, args.steps, args.warmup))
  print_rows(rows, seconds / args.steps, args.share)
  created = creations(lines, args.steps)
  print_creations(created)
  if unreadable:
    print("(%d verbose lines left out: oneDNN threads printing at once had mixed them)"
          % unreadable)
  append_result(args.results, {
      "bench": "onednn_kernels", "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
      "machine": described,
      "config": {"model": args.config, "precision": args.precision,
                 "batch_size": args.batch_size, "filters": args.filters,
                 "kernel_plan": plan_name, "kernels": kernels_label(plan, args.kernels),
                 "steps": args.steps, "warmup": args.warmup},
      "seconds_per_iteration_verbose": round(seconds / args.steps, 4),
      "unreadable_lines": unreadable,
      "primitive_creations": created,
      "executions": [dict(execution._asdict(), ms_per_iteration=round(ms, 3),
                          calls_per_iteration=calls) for execution, ms, calls in rows]})
  return 0


if __name__ == "__main__":
  sys.exit(main())
