"""Data-parallel scaling on this machine's cores, and a projection to GPU clusters.

    python bench/scaling.py [--configs celebA,mnist] [--steps 8] [--warmup 3]

For each model (celebA-64: 64x64x3 unconditional; mnist: 28x28 conditional; batch 64 per
replica, the original's filter counts) three layouts on the same cores, one after another:

  single     1 process, 1 replica, all cores (TensorFlow's thread choice): today's graph
  workers    2 worker processes on 127.0.0.1 (MultiWorkerMirroredStrategy, collective
             all-reduce over gRPC), 1 intra-op thread each
  virtual    1 process, 2 replicas on 2 virtual CPU devices (MirroredStrategy)

Each runs --warmup iterations, then times --steps iterations of DCGAN.train_step (one D and
two G updates, synthetic batches, losses fetched as training does).  Reported per layout:
images/s (all replicas), efficiency = images/s / single's images/s, and for the replicated
layouts the bytes all-reduced per iteration and the time the chief's collectives took,
read from one traced iteration (RunMetadata step stats: every Collective* node's bytes and
the union of their execution intervals).

After the run every replica's copy of the variables is compared (a digest per copy, every
worker): they must be identical, bit for bit.

The projection: synchronous data parallelism over N GPUs with a ring all-reduce moves
2 (N - 1) / N x S bytes per GPU per iteration (S: the gradient bytes all-reduced, from the
graph), except that several workers gather the factors of a linear layer's weight gradient
where they are fewer numbers (ops.gathers_factors at that N): (N - 1) x rows x (in + out)
per GPU instead; at a link bandwidth B the bytes M take t = M / B without overlap.  Speed-up
over one GPU is N x T / (T + t) for a step time T; the table gives it for T = the step
time measured here (single) and for the T that would keep 90% efficiency (T = 9 t), for
8 and 64 GPUs at 25 and 100 Gb/s.  No GPU was used: it is arithmetic on measured inputs.

Prints the table and appends one JSON line to bench/results.jsonl.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

# common first: the project on the path, oneDNN decided before TensorFlow loads
from common import bench_settings, kernels_spec, synthetic_feed, time_iterations
LAYOUTS = ("single", "workers", "virtual")
NETWORKS = {"d": "discriminator", "g": "generator"}  # a variable name's first letter
TIMEOUT = 1800


# ---------------------------------------------------------------------------------------------
# one measurement (a child process)

def collective_trace(run_metadata, graph, replicas):
  """(all-reduced bytes, all-gathered bytes, seconds) of a run's Collective* nodes: input
  bytes from the graph (one replica's part, for a gather), and the union of their
  [start, end] intervals (several may overlap each other)."""
  import numpy as np
  total_bytes = {"Reduce": 0, "Gather": 0}
  intervals = []
  for device in run_metadata.step_stats.dev_stats:
    for node in device.node_stats:
      name = node.node_name.split(":")[0]
      try:
        op = graph.get_operation_by_name(name)
      except KeyError:
        continue
      kind = [k for k in total_bytes if k in op.type]
      if not op.type.startswith("Collective") or not kind:
        continue
      if kind[0] == "Gather":
        # its input's batch size is known at run time only: the traced output, all replicas'
        for output in node.output[:1]:
          dims = [d.size for d in output.tensor_description.shape.dim]
          total_bytes["Gather"] += int(np.prod(dims)) * op.outputs[0].dtype.size // replicas
        continue
      for tensor in op.inputs[:1]:
        shape = tensor.shape.as_list()
        if None not in shape:
          total_bytes[kind[0]] += int(np.prod(shape)) * tensor.dtype.size
      start = node.all_start_micros
      intervals.append((start, start + max(node.all_end_rel_micros, node.op_end_rel_micros)))
  busy, end = 0, None
  for a, b in sorted(intervals):
    if end is None or a > end:
      busy += b - a
      end = b
    elif b > end:
      busy += b - end
      end = b
  return total_bytes["Reduce"], total_bytes["Gather"], busy / 1e6


def traced_iteration(model, feed):
  """{bytes, gathered, seconds} of the collectives of one more iteration, traced (its runs are
  exactly train_step's; one replica has none), per local replica."""
  sess = model.sess
  model.sess = Traced(sess)
  try:
    model.train_step(feed, summarize=False)
  finally:
    traced, model.sess = model.sess, sess
  total = {"bytes": 0, "gathered": 0, "seconds": 0.0}
  for metadata in traced.metadata:
    nbytes, gathered, seconds = collective_trace(metadata, sess.graph,
                                               model.replication.num_replicas)
    # each local replica the same amount
    total["bytes"] += nbytes // model.replication.local_replicas
    total["gathered"] += gathered // model.replication.local_replicas
    total["seconds"] += seconds
  return total


class Traced(object):
  """A Session whose every run is traced (FULL_TRACE), its RunMetadata kept in order."""

  def __init__(self, sess):
    self.sess, self.metadata = sess, []

  def run(self, fetches, feed_dict=None, options=None):
    import tensorflow.compat.v1 as tf
    traced = tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE)
    if options is not None:
      traced.timeout_in_ms = options.timeout_in_ms
    self.metadata.append(tf.RunMetadata())
    return self.sess.run(fetches, feed_dict, options=traced, run_metadata=self.metadata[-1])


def fingerprints(sess, model):
  """A digest of every variable's value per local replica (its copies)."""
  import hashlib
  local = model.replication.local_copies
  digests = [hashlib.sha256() for _ in local(model.all_vars[0])]
  values = sess.run({var.op.name: local(var) for var in model.all_vars})  # one run, one executor
  for name in sorted(values):
    for digest, value in zip(digests, values[name]):
      digest.update(name.encode() + value.tobytes())
  return [digest.hexdigest() for digest in digests]


def linear_layers(model):
  """[(network, size_in, size_out)] of the model's linear layers ('d' or 'g')."""
  return [(v.op.name[0], int(v.shape[0]), int(v.shape[1]))
          for v in model.d_vars + model.g_vars if v.op.name.endswith("_lin/Matrix")]


def child(args):
  import hardware
  hardware.import_tensorflow()  # the process's start: oneDNN, TF1 graph behaviour
  import numpy as np
  if args.layout == "virtual":
    import tensorflow as tf2
    cpu = tf2.config.list_physical_devices("CPU")[0]
    tf2.config.set_logical_device_configuration(cpu, [tf2.config.LogicalDeviceConfiguration()] * 2)
  import tensorflow.compat.v1 as tf
  tf.get_logger().setLevel("ERROR")
  import cluster as cluster_module
  import training
  from model import DCGAN
  from step import UPDATES
  from precision import session_config

  layout = {"workers": cluster_module.Layout(args.hosts.split(","), args.task, []),
            "virtual": cluster_module.Layout([], 0, ["/device:CPU:0", "/device:CPU:1"]),
            "single": cluster_module.Layout([], 0, [])}[args.layout]
  cluster = cluster_module.Cluster(layout)
  threads = 1 if args.layout == "workers" else 0  # two processes share the cores
  config = cluster.session_config(session_config(intra_op_threads=threads))
  target = cluster.start(config)
  rng = np.random.RandomState(args.task)
  with tf.Graph().as_default(), tf.Session(target, config=config) as sess:
    # the benches' model (common.bench_settings) in fp32 with this machine's kernel plan
    measured = argparse.Namespace(**dict(vars(args), precision="fp32",
                                         kernels=kernels_spec(hardware.DEFAULT_KERNELS)))
    model = DCGAN(sess, settings=bench_settings(measured), cluster=cluster)
    local = model.replication.local_replicas
    job = model.job([0] * 6400)
    model.coordination.start(job, training.settings_from(argparse.Namespace(), job.learning_rate,
                                                         job.folders))
    feed = synthetic_feed(model, args.batch_size * local, rng)
    times, _, _ = time_iterations(model, feed, args.warmup, args.steps)
    traced = traced_iteration(model, feed)
    grads = {"d": sum(int(np.prod(v.shape.as_list())) for v in model.d_vars) * 4,
             "g": sum(int(np.prod(v.shape.as_list())) for v in model.g_vars) * 4}
    complete = model.gathered
    # the Matrix gradients computed from gathered factors instead, once per update
    updates = dict(UPDATES)
    gathered_matrices = sum(int(np.prod(v.shape.as_list())) * 4 * updates[NETWORKS[v.name[0]]]
                            for v in model.d_vars + model.g_vars if v.name in complete)
    digests = fingerprints(sess, model)
    layers = linear_layers(model)
  s_per_iter = float(np.median(times))
  result = {"layout": args.layout, "task": args.task, "replicas": cluster.num_replicas,
            "s_per_iter": s_per_iter,
            "images_per_s": args.batch_size * cluster.num_replicas / s_per_iter,
            "collective_bytes": traced["bytes"], "gathered_bytes": traced["gathered"],
            "collective_seconds": traced["seconds"],
            "gradient_bytes_per_iteration": sum(grads[net[0]] * count for net, count in UPDATES),
            "gathered_gradient_bytes_per_iteration": gathered_matrices,
            "linear_layers": layers, "fingerprints": digests}
  with open(args.out, "w") as f:
    json.dump(result, f)
  return 0


def measure(layout, config, args):
  """Run one layout (two processes for 'workers'); the chief's result dict."""
  folder = tempfile.mkdtemp(prefix="dcgan-scaling-")
  import cluster as cluster_module
  hosts = ",".join("127.0.0.1:%d" % port for port in cluster_module.free_local_ports(2))
  tasks = [0, 1] if layout == "workers" else [0]
  procs = []
  try:
    for task in tasks:
      out = os.path.join(folder, "task%d.json" % task)
      procs.append((out, subprocess.Popen(
          [sys.executable, os.path.abspath(__file__), "--child", layout, "--config", config,
           "--task", str(task), "--hosts", hosts, "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--batch_size", str(args.batch_size),
           "--filters", str(args.filters), "--fc", str(args.fc), "--out", out], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    results = []
    for out, proc in procs:
      _, err = proc.communicate(timeout=TIMEOUT)

      if proc.returncode != 0:
        raise RuntimeError("%s on %s failed:\n%s" % (layout, config, err[-3000:]))
      results.append(json.load(open(out)))
    # after the same steps every replica's copy of the variables is the same, bit for bit
    results[0]["copies_identical"] = len({d for r in results for d in r["fingerprints"]}) == 1
    return results[0]
  finally:
    for _, proc in procs:
      if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)


def collective_bytes_per_gpu(gpus, gradient_bytes, layers, batch):
  """Bytes each of `gpus` replicas moves per iteration (one D and two G updates): a ring
  all-reduce of every gradient, 2 (N - 1) / N of its bytes, except the linear layers that
  gather their factors at that N (ops.gathers_factors; D's pass twice per loss, G's once),
  whose ring all-gather moves (N - 1) x rows x (in + out) numbers."""
  import ops
  from step import LAYER_PASSES, UPDATES
  reduced, gathered = gradient_bytes, 0.0
  for network, size_in, size_out in layers:
    updates, rows = dict(UPDATES)[NETWORKS[network]], LAYER_PASSES[NETWORKS[network]] * batch
    if ops.gathers_factors(gpus, rows, size_in, size_out):
      reduced -= updates * size_in * size_out * 4
      gathered += updates * (gpus - 1) * rows * (size_in + size_out) * 4
  return 2.0 * (gpus - 1) / gpus * reduced + gathered


def projection(step_seconds, gradient_bytes, layers, batch):
  rows = []
  for gpus in (8, 64):
    for gbits in (25, 100):
      moved = collective_bytes_per_gpu(gpus, gradient_bytes, layers, batch)
      comm = moved / (gbits * 1e9 / 8)
      rows.append({"gpus": gpus, "gbit_per_s": gbits, "bytes_per_gpu": moved,
                   "allreduce_seconds": comm,
                   "speedup_at_measured_step": gpus * step_seconds / (step_seconds + comm),
                   "step_seconds_for_90_percent": 9 * comm})
  return rows


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--configs", default="celebA,mnist")
  parser.add_argument("--layouts", default=",".join(LAYOUTS))
  parser.add_argument("--steps", type=int, default=8)
  parser.add_argument("--warmup", type=int, default=3)
  parser.add_argument("--batch_size", type=int, default=64, help="per replica [64]")
  parser.add_argument("--filters", type=int, default=64, help="gf_dim = df_dim [64]")
  parser.add_argument("--fc", type=int, default=1024, help="gfc_dim = dfc_dim (mnist) [1024]")
  parser.add_argument("--results", default=None)
  parser.add_argument("--child", choices=LAYOUTS, dest="layout", help=argparse.SUPPRESS)
  parser.add_argument("--config", default="mnist", help=argparse.SUPPRESS)
  parser.add_argument("--task", type=int, default=0, help=argparse.SUPPRESS)
  parser.add_argument("--hosts", default="", help=argparse.SUPPRESS)
  parser.add_argument("--out", default="", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.layout:
    return child(args)

  from common import RESULTS, append_result, machine, matmul_peak_gflops, print_machine
  import hardware
  described = machine(hardware.kernel_plan(), fp32_matmul_peak_gflops=matmul_peak_gflops())
  configs = [c for c in args.configs.split(",") if c]
  layouts = [l for l in args.layouts.split(",") if l]
  if "single" not in layouts:
    layouts.insert(0, "single")
  result = {"bench": "scaling", "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": described,
            "config": {"steps": args.steps, "warmup": args.warmup,
                       "batch_per_replica": args.batch_size, "filters": args.filters,
                       "fc": args.fc},
            "models": {}}
  for config in configs:
    rows = {}
    for layout in layouts:
      print("measuring %s, %s ..." % (config, layout), flush=True)
      rows[layout] = measure(layout, config, args)
    base = rows["single"]["images_per_s"]
    for row in rows.values():
      row["efficiency"] = row["images_per_s"] / base
    result["models"][config] = {
        "layouts": rows,
        "projection": projection(rows["single"]["s_per_iter"],
                                 rows["single"]["gradient_bytes_per_iteration"],
                                 rows["single"]["linear_layers"], args.batch_size)}
  print()
  print_machine(described)
  print_report(result, args.batch_size)
  append_result(args.results or RESULTS, result)
  return 0


def print_report(result, batch_size):
  """The table per model, the 2-worker target (recorded in result) and the projection."""
  targets = {"celebA": 0.9, "mnist": 0.7}
  for config, model in result["models"].items():
    print("\n%s (batch %d per replica):" % (config, batch_size))
    print("  %-8s %8s %9s %10s %11s %14s %12s %14s" % (
        "layout", "replicas", "s/iter", "images/s", "efficiency", "MB allreduced",
        "MB gathered", "collectives s"))
    for layout, row in model["layouts"].items():
      # MirroredStrategy on one CPU reduces by copies and adds, not collective ops: no trace
      traced = ("%14.1f %12.1f %14.3f" % (row["collective_bytes"] / 1e6,
                                          row["gathered_bytes"] / 1e6, row["collective_seconds"])
                if layout == "workers" else "%14s %12s %14s" % ("-", "-", "-"))
      print("  %-8s %8d %9.3f %10.1f %11.2f %s" % (
          layout, row["replicas"], row["s_per_iter"], row["images_per_s"], row["efficiency"],
          traced))
    if "workers" in model["layouts"]:
      workers = model["layouts"]["workers"]
      print("  the two workers' variables after the run: %s" % (
          "identical" if workers["copies_identical"] else "DIFFERENT"))
      if workers["gathered_gradient_bytes_per_iteration"]:
        print("  (%.1f MB of the workers' gradients came from %.1f MB of gathered factors)" % (
            workers["gathered_gradient_bytes_per_iteration"] / 1e6,
            workers["gathered_bytes"] / 1e6))
      eff = workers["efficiency"]
      model["target"] = {"workers_efficiency": targets[config],
                         "met": bool(eff >= targets[config])}
      print("  target: 2-worker efficiency >= %.2f: %s (%.2f)"
            % (targets[config], "met" if eff >= targets[config] else "NOT met", eff))
    grad = model["layouts"]["single"]["gradient_bytes_per_iteration"]
    print("  projection (%.1f MB of gradients per iteration: ring all-reduce, or ring "
          "all-gather of the linear layers' factors where fewer; no overlap):" % (grad / 1e6))
    for row in model["projection"]:
      print("    %2d GPUs, %3d Gb/s: %5.1f MB per GPU, %.3f s/iter; speed-up %.1f at this step "
            "time (%.3f s); 90%% efficiency needs steps >= %.3f s"
            % (row["gpus"], row["gbit_per_s"], row["bytes_per_gpu"] / 1e6,
               row["allreduce_seconds"],
               row["speedup_at_measured_step"], model["layouts"]["single"]["s_per_iter"],
               row["step_seconds_for_90_percent"]))


if __name__ == "__main__":
  sys.exit(main())
