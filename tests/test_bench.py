"""The benchmarks run and report their fields (no timing is asserted)."""
import argparse
import functools
import importlib
import json
import os
import subprocess
import sys

import pytest
import tensorflow.compat.v1 as tf

import hardware
import precision as precision_module
from conftest import PROJECT_DIR
from hardware import cpu_supports_bf16
from model import DCGAN
from utils import UserError

sys.path.insert(0, os.path.join(PROJECT_DIR, "bench"))
import common  # noqa: E402
import train_speed  # noqa: E402


def test_data_pipeline_bench_reports_its_fields(tmp_path):
  out, (result,) = run_bench(tmp_path, "data_pipeline.py", "--images", "24", "--steps", "2",
                             "--batch_size", "4", "--input_height", "32", "--output_height", "16",
                             "--filters", "4")
  for field in ("matmul peak", "cold_1_thread", "cold_2_threads", "cached", "s/step",
                "waiting for data"):
    assert field in out
  assert result["train"]["steps"] == 2 and result["config"]["images"] == 24
  assert set(result["loader_images_per_s"]) == {"cold_1_thread", "cold_2_threads", "cached"}
  assert all(v > 0 for v in result["loader_images_per_s"].values())
  assert 0 <= result["train"]["data_wait_fraction"] < 1
  assert isinstance(result["meets_target"], bool)
  assert result["machine"]["fp32_matmul_peak_gflops"] > 0


def run_bench(tmp_path, script, *args, timeout=600):
  """Run bench/<script> with --results in tmp_path; (stdout, its JSON result lines, in order).
  TF_CPP_MIN_LOG_LEVEL unset, as a user runs it: TensorFlow's C++ start-up lines stay hidden."""
  results = str(tmp_path / (script + ".jsonl"))
  env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
  proc = subprocess.run(
      [sys.executable, os.path.join(PROJECT_DIR, "bench", script)] + list(args)
      + ["--results", results],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout,
      env=dict(env, BENCH_PEAK_SECONDS="0"))  # one repeat
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "absl::InitializeLog" not in proc.stderr and ".cc:" not in proc.stderr, proc.stderr
  return proc.stdout, [json.loads(line) for line in open(results).read().splitlines()]


def run_train_speed(tmp_path, *args):
  return run_bench(tmp_path, "train_speed.py", "--steps", "2", "--warmup", "1", "--batch_size",
                   "4", "--filters", "4", "--fc", "16", *args)


# Each run of the bench costs a TensorFlow start and its oneDNN probe's, so one run checks
# several things: {config: (--kernels, --precision, --rounds)}, celebA with this machine's plan
# (fp32 and bfloat16 in turn where the CPU has it) in two rounds, mnist with a plan asked for by
# name and the same plan with a form changed, in turn, in one.
TRAIN_SPEED_RUNS = {
    "celebA": ((hardware.DEFAULT_KERNELS,), "both" if cpu_supports_bf16() else "fp32", 2),
    "mnist": (("plain", "plain+label_term=true"), "fp32", 1)}


@pytest.mark.parametrize("config", sorted(TRAIN_SPEED_RUNS))
def test_train_speed_bench_reports_its_fields(tmp_path, config):
  kernels, precision, rounds = TRAIN_SPEED_RUNS[config]
  out, results = run_train_speed(tmp_path, "--config", config, "--kernels", *kernels,
                                 "--precision", precision, "--rounds", str(rounds))
  for field in ("matmul peak: fp32", "s/iter", "img/s", "GFLOP/s", "% of fp32 peak", "kernel plan",
                "oneDNN", "TensorFlow"):
    assert field in out
  assert ("rounds: s/iter " in out) == (rounds > 1)
  precisions = train_speed.PRECISIONS[precision]
  assert [(r["config"]["kernels"], r["config"]["precision"]) for r in results] == [
      (common.kernels_label(common.kernel_plan(common.kernels_spec(k)), common.kernels_spec(k)), p)
      for k in kernels for p in precisions]
  for result, spec in zip(results, [k for k in kernels for _ in precisions]):
    check_train_speed_result(out, result, config, common.kernels_spec(spec))
  assert all(r["machine"]["cpu_model"] == results[0]["machine"]["cpu_model"]
             and r["machine"]["fp32_matmul_peak_gflops"]
             == results[0]["machine"]["fp32_matmul_peak_gflops"]
             for r in results)  # one machine, its peaks measured once
  # all CPUs' matmul over one's, before the peak and after each round, said once
  cores = results[0]["core_scaling"]
  assert len(cores) == rounds + 1 and all(r["core_scaling"] == cores for r in results)
  assert all(c["cpus"] == os.cpu_count() and c["ratio"] > 0.3 and c["one_gflops"] > 0
             for c in cores), cores
  assert out.count("cores: %d CPUs' matmul over one CPU's %.2fx before the peak, "
                   % (os.cpu_count(), cores[0]["ratio"])) == 1
  if precision == "both":
    fp32, bf16 = results
    check_speedup(out, "bf16 over fp32", fp32, bf16, bf16["bf16_over_fp32"])
  if len(kernels) > 1:
    first, changed = results
    assert changed["config"]["kernel_forms"] == {"label_term": True}
    assert "kernels plain+label_term=true, " in out and "kernel plan plain, plain+" in out
    assert "over_kernels" not in first and changed["over_kernels"]["kernels"] == "plain"
    check_speedup(out, "over kernels plain", first, changed, changed["over_kernels"])


def test_two_names_of_one_plan_are_compared_as_two_models():
  """`--kernels auto avx512` on an AVX-512 machine: one plan under two names, the noise of an
  in-process comparison; both results carry the plan's label, and each still gets its own
  ratios (compare tells them apart by the specs, not the labels)."""
  name = hardware.kernel_plan().name
  variants = [train_speed.Variant(common.kernels_spec(text), precision)
              for text in ("auto", name) for precision in ("fp32", "bf16")]
  results = [{"config": {"kernels": name, "precision": v.precision},
              "s_per_iter": seconds, "rounds_s_per_iter": [seconds, seconds * 2]}
             for v, seconds in zip(variants, (2.0, 1.0, 2.5, 0.8))]
  train_speed.compare(variants, results)
  auto_fp32, auto_bf16, named_fp32, named_bf16 = results
  assert "over_kernels" not in auto_fp32 and "over_kernels" not in auto_bf16
  assert named_fp32["over_kernels"] == {"images_per_s": 0.8, "rounds": [0.8, 0.8],
                                        "kernels": name}
  assert named_bf16["over_kernels"]["images_per_s"] == 1.25
  assert auto_bf16["bf16_over_fp32"]["images_per_s"] == 2.0
  assert named_bf16["bf16_over_fp32"]["images_per_s"] == round(2.5 / 0.8, 3)


def check_speedup(out, what, base, result, ratio):
  """ratio (compare's) is result's img/s over base's, all rounds' and each round's, and out
  says it."""
  assert ratio["images_per_s"] == round(base["s_per_iter"] / result["s_per_iter"], 3)
  assert ratio["rounds"] == [round(b / r, 3) for b, r in zip(base["rounds_s_per_iter"],
                                                              result["rounds_s_per_iter"])]
  assert "%s, the same process: %.2fx img/s" % (what, ratio["images_per_s"]) in out


def check_train_speed_result(out, result, config, kernels):
  """The fields of one model's result of a train_speed run of --steps 2 at batch 4 (kernels:
  its common.KernelsSpec), and the lines out shows of it."""
  precision = result["config"]["precision"]
  machine = result["machine"]
  assert machine["cpu_kind"] == hardware.cpu_kind() and machine["cpu_model"] in out
  plan = common.kernel_plan(kernels, precision)
  assert "kernel plan %s" % plan.name in out
  assert machine["kernel_plan"] == result["config"]["kernel_plan"] == plan.name
  assert machine["onednn"] == onednn_on()
  assert set(machine["isa"]) == {"avx2", "avx512", "amx", "bf16"}
  assert result["config"]["inter_op_threads"] == plan.inter_op_threads
  assert result["config"]["model"] == config and result["losses_finite"]
  assert result["s_per_iter"] > 0 and result["images_per_s"] > 0 and result["achieved_gflops"] > 0
  rounds = result["config"]["rounds"]
  assert len(result["rounds_s_per_iter"]) == rounds
  assert min(result["rounds_s_per_iter"]) >= result["s_per_iter_min"]
  assert "s/iter %.3f (median of %d; " % (result["s_per_iter"], 2 * rounds) in out
  assert "CPUs (%d): peak " % os.cpu_count() in out and "; steps " in out
  for use in result["cpu_use"].values():  # the peak's and the timed steps'
    assert use["cpus"] == os.cpu_count() and 0 < use["process_cpus"] <= use["cpus"] + 0.1
    assert 0 <= use["others_percent"] <= 100 and 0 <= use["steal_percent"] <= 100
  assert result["machine"]["fp32_matmul_peak_gflops"] > 0
  flops = result["flops"]
  assert flops["iteration"] == 4 * (7 * flops["generator_forward_per_example"]
                                    + 10 * flops["discriminator_forward_per_example"])
  if precision == "bf16":
    assert "bf16" in out and result["machine"]["bf16_matmul_peak_gflops"] > 0
    assert result["percent_of_bf16_peak"] is not None


def test_a_kernels_spec_changes_forms_of_a_plan_after_its_precisions_and_refuses_what_wont_run():
  """--kernels PLAN+FIELD=VALUE: a form measured without editing hardware.py, typed as the
  plans have it, applied after bf16's lowered forms; a form the plan's gradients would not use
  is refused, not measured as if it ran."""
  spec = common.kernels_spec("avx512+layer_grads=chosen+patches_max_pixels=64+label_term=false")
  assert spec.name == "avx512" and spec.forms == (
      ("layer_grads", "chosen"), ("patches_max_pixels", 64), ("label_term", False))
  for precision in ("fp32", "bf16"):
    plan = common.kernel_plan(spec, precision)
    assert plan == hardware.kernel_plan("avx512", lowered=precision == "bf16")._replace(
        layer_grads="chosen", patches_max_pixels=64, label_term=False)
  assert common.kernels_label(plan, spec) == spec.text
  auto = common.kernels_spec("auto")
  assert auto.forms == () and common.kernel_plan(auto) == hardware.kernel_plan()
  assert common.kernels_label(common.kernel_plan(auto), auto) == hardware.kernel_plan().name
  # bf16's avx512 plan takes its layers' own gradients (hardware.LOWERED), fp32's does not
  patches = common.kernels_spec("avx512+patches_max_pixels=64")
  assert common.kernel_plan(patches, "bf16").patches_max_pixels == 64
  with pytest.raises(UserError, match="in fp32 .* use no patches_max_pixels; add "
                                      r"\+layer_grads=chosen"):
    common.kernel_plan(patches, "fp32")
  for text, said in [("avx5", "'avx5' names no kernel plan; choose one of auto, amx"),
                     ("avx2+bogus=1", "'bogus=1' is not FIELD=VALUE with FIELD one of label_term"),
                     ("avx2+inter_op_threads=2", "'inter_op_threads=2' is not FIELD=VALUE"),
                     ("avx2+name=plain", "'name=plain' is not FIELD=VALUE"),
                     ("avx2+layer_grads", "'layer_grads' is not FIELD=VALUE"),
                     ("avx2+layer_grads=mine", "layer_grads=mine: layer_grads takes autodiff or "
                                               "chosen"),
                     ("avx2+label_term=yes", "label_term=yes: label_term takes false or true"),
                     ("avx2+patches_max_pixels=-1",
                      "patches_max_pixels=-1: patches_max_pixels takes a whole number")]:
    with pytest.raises(argparse.ArgumentTypeError) as refused:
      common.kernels_spec(text)
    assert str(refused.value).startswith(said), (text, str(refused.value))


def test_cpu_use_reads_steal_and_other_work_from_the_machines_counters(tmp_path):
  stat = tmp_path / "stat"
  # user nice system idle iowait irq softirq steal guest guest_nice, in clock ticks
  stat.write_text("cpu  1000 0 200 5000 0 0 0 50 0 0\ncpu0 1 2 3\n")
  clock = common.cpu_clock(str(stat))
  hz = os.sysconf("SC_CLK_TCK")
  stat.write_text("cpu  %d 0 200 %d 0 0 0 %d 0 0\n" % (1000 + 3 * hz, 5000 + hz, 50 + hz))
  use = common.cpu_use_since(clock, str(stat))
  # 5 s of CPU time passed: 3 s busy (not this process: it ran for a few milliseconds), 1 s
  # idle, 1 s stolen by the host
  assert use["steal_percent"] == 20.0 and 58 <= use["others_percent"] <= 60
  assert use["cpus"] == os.cpu_count() and 0 <= use["process_cpus"] <= use["cpus"]
  # two spans together (one precision's rounds): the second all stolen, 1 s
  later = common.cpu_clock(str(stat))
  stat.write_text("cpu  %d 0 200 %d 0 0 0 %d 0 0\n" % (1000 + 3 * hz, 5000 + hz, 50 + 2 * hz))
  both = common.cpu_use_over([(clock, later), (later, common.cpu_clock(str(stat)))])
  assert both["steal_percent"] == round(100 * 2 / 6, 1) and 48 <= both["others_percent"] <= 50
  missing = common.cpu_use_since(common.cpu_clock(str(tmp_path / "none")), str(tmp_path / "none"))
  assert missing["steal_percent"] is None and missing["others_percent"] is None


def test_the_cores_line_says_when_the_virtual_cpus_shared_a_core(capsys):
  def sample(ratio):
    return {"cpus": 2, "ratio": ratio, "one_gflops": 90.0, "all_gflops": ratio and 90.0 * ratio}

  train_speed.print_core_scaling([sample(1.95), sample(1.9), sample(1.93)])
  own = capsys.readouterr().out
  assert own.startswith("cores: 2 CPUs' matmul over one CPU's 1.95x before the peak, 1.90x / "
                        "1.93x after each round") and "shared" not in own
  train_speed.print_core_scaling([sample(1.95), sample(1.05), sample(None)])
  shared = capsys.readouterr().out
  assert "1.05x / ? after each round" in shared and "shared a physical core" in shared


class FirstSession(Exception):
  """Raised where a bench opens its first Session: what it asked for is recorded."""


@pytest.mark.parametrize("script, args, threads", [
    ("train_speed", ["--config", "mnist", "--intra_op_threads", "1", "--inter_op_threads", "1",
                     "--precision", "bf16" if cpu_supports_bf16() else "fp32"], (1, 1)),
    ("layer_speed", ["--config", "mnist", "--kernels", "avx2"],
     (0, hardware.PLANS["avx2"].inter_op_threads)),
])
def test_a_benchs_first_session_asks_for_the_threads_of_what_it_measures(monkeypatch, script,
                                                                         args, threads):
  """TensorFlow sizes a process's thread pools at its first Session and every later one runs on
  them (common.thread_pools): the peak's Session, opened first, must ask for the model's."""
  asked = []

  def first_session(*unused, config=None, **kwargs):
    asked.append(config)
    raise FirstSession()

  monkeypatch.setattr(tf, "Session", first_session)
  monkeypatch.setattr(sys, "argv", [script] + args)
  monkeypatch.setenv(common.PEAK_SECONDS_VARIABLE, "0")  # train_speed's cores sample comes first
  with pytest.raises(FirstSession):
    importlib.import_module(script).main()
  assert asked[0] is not None
  assert (asked[0].intra_op_parallelism_threads, asked[0].inter_op_parallelism_threads) == threads
  # and nothing but threads: the fp32 peak is not lowered by a bf16 run's rewrite
  assert asked[0] == tf.ConfigProto(intra_op_parallelism_threads=threads[0],
                                    inter_op_parallelism_threads=threads[1])


@functools.lru_cache(maxsize=None)
def onednn_probed():
  """hardware.onednn_probe() (a child process), asked once: (oneDNN on, its ISA)."""
  return hardware.onednn_probe()


def onednn_on():
  """Whether TensorFlow runs oneDNN kernels here."""
  return onednn_probed()[0]


def test_forward_flops_of_celeba_64():
  """The count equals the layer-by-layer count of the original's celebA-64 model."""
  with tf.Graph().as_default(), tf.Session() as sess:
    model = DCGAN(sess, batch_size=64, seed=0)
    g_f, d_f, total = train_speed.iteration_flops(model)
  deconv = lambda h, w, ci, co: 2 * h * w * 25 * ci * co  # small side h x w, ci in, co out
  assert g_f == 2 * 100 * 8192 + deconv(4, 4, 512, 256) + deconv(8, 8, 256, 128) + \
      deconv(16, 16, 128, 64) + deconv(32, 32, 64, 3)
  conv = lambda h, w, ci, co: 2 * h * w * 25 * ci * co  # output h x w
  assert d_f == conv(32, 32, 3, 64) + conv(16, 16, 64, 128) + conv(8, 8, 128, 256) + \
      conv(4, 4, 256, 512) + 2 * 8192
  assert total == 64 * (7 * g_f + 10 * d_f)


def test_forward_flops_of_conditional_mnist():
  """Label channels count as input channels, as in the original's layers."""
  with tf.Graph().as_default(), tf.Session() as sess:
    model = DCGAN(sess, batch_size=64, output_height=28, output_width=28, c_dim=1, y_dim=10,
                  dataset_name="mnist", seed=0)
    g_f, d_f, total = train_speed.iteration_flops(model)
  assert g_f == 2 * 110 * 1024 + 2 * 1034 * 6272 + 2 * 7 * 7 * 25 * 138 * 128 + \
      2 * 14 * 14 * 25 * 138 * 1
  assert d_f == 2 * 14 * 14 * 25 * 11 * 11 + 2 * 7 * 7 * 25 * 21 * 74 + 2 * 3636 * 1024 + 2 * 1034
  assert total == 64 * (7 * g_f + 10 * d_f)


def test_bf16_is_refused_without_hardware_support(monkeypatch):
  monkeypatch.setattr(precision_module, "cpu_supports_bf16", lambda: False)
  monkeypatch.setattr(precision_module.tf.config, "list_physical_devices", lambda kind: [])
  with pytest.raises(UserError, match="--precision bf16 needs a CPU with AVX512-BF16"):
    precision_module.session_config("bf16")
  assert precision_module.session_config("fp32").gpu_options.allow_growth
  with pytest.raises(UserError, match="--precision must be one of fp32, fp16, bf16"):
    precision_module.session_config("fp8")


def test_layer_speed_bench_times_every_conv_kernel_of_the_model(tmp_path):
  out, (result,) = run_bench(tmp_path, "layer_speed.py", "--config", "mnist", "--batch_size", "4",
                             "--repeats", "1")
  assert "matmul peak: fp32" in out and "kernel plan" in out
  layers = {(row["layer"], row["kernel"]): row for row in result["layers"]}
  names = ["generator/g_h2", "generator/g_h3", "discriminator/d_h0_conv", "discriminator/d_h1_conv"]
  assert set(layers) == {(n, k) for n in names for k in ("forward", "data", "weights")}
  # shapes from the real graph: g_h2 takes 7x7 (128 + 10 label channels) to 14x14x128
  assert layers["generator/g_h2", "forward"]["small"] == [4, 7, 7, 138]
  assert layers["generator/g_h2", "forward"]["large"] == [4, 14, 14, 128]
  assert layers["discriminator/d_h1_conv", "data"]["large"] == [4, 14, 14, 21]
  for row in result["layers"]:
    assert row["gflops"]["float32"] > 0 and row["gflops"]["plan"] > 0
    assert ("bfloat16" in row["gflops"]) == ("plan_bf16" in row["gflops"]) == cpu_supports_bf16()
    assert "%s " % row["layer"] in out
  # each layer's timings between two core_scaling samples, the second the next layer's first
  samples = [layers[n, "forward"]["core_scaling"] for n in names]
  assert all(s[1] == t[0] for s, t in zip(samples, samples[1:]))
  assert all(c["cpus"] == os.cpu_count() and c["ratio"] > 0.3 for s in samples for c in s)
  before, after = samples[0]
  assert "%.2fx/%.2fx" % (before["ratio"], after["ratio"]) in out


def test_scaling_bench_reports_two_workers_against_one_process_and_the_projection(tmp_path):
  # (the virtual-device layout is the MirroredStrategy of tests/test_distribute.py; left out
  # here to keep the suite's time)
  out, (result,) = run_bench(tmp_path, "scaling.py", "--configs", "mnist", "--layouts", "workers",
                             "--steps", "1", "--warmup", "1", "--batch_size", "4", "--filters", "4",
                             "--fc", "16", timeout=900)
  assert "2-worker efficiency >= 0.70" in out and "64 GPUs, 100 Gb/s" in out
  model = result["models"]["mnist"]
  layouts = model["layouts"]
  assert sorted(layouts) == ["single", "workers"]  # single always, as the efficiency's base
  assert [layouts[l]["replicas"] for l in ("single", "workers")] == [1, 2]
  assert layouts["single"]["efficiency"] == 1.0
  assert all(row["images_per_s"] > 0 for row in layouts.values())
  workers = layouts["workers"]
  # in the traced iteration the two workers all-reduced one D and two G gradients' worth, but
  # for the linear layers' weight gradients they made from gathered factors instead
  assert workers["gathered_gradient_bytes_per_iteration"] > 0 and workers["gathered_bytes"] > 0
  assert workers["collective_bytes"] >= (layouts["single"]["gradient_bytes_per_iteration"]
                                         - workers["gathered_gradient_bytes_per_iteration"])
  assert workers["collective_seconds"] > 0
  assert workers["copies_identical"] is True  # both workers' variables, bit for bit
  assert isinstance(model["target"]["met"], bool)
  assert [(row["gpus"], row["gbit_per_s"]) for row in model["projection"]] == [
      (8, 25), (8, 100), (64, 25), (64, 100)]
  assert all(0 < row["speedup_at_measured_step"] <= row["gpus"] for row in model["projection"])
  assert all(row["bytes_per_gpu"] > 0 for row in model["projection"])


def test_scaling_projection_counts_gathered_factors_only_where_they_are_fewer():
  import scaling
  # MNIST's two large layers: G's g_h1_lin (one pass per loss, two G updates per iteration) and
  # D's d_h2_lin (two passes, one D update); batch 64 per GPU
  g, d = (1034, 6272), (3636, 1024)
  layers = [("g",) + g, ("d",) + d]
  total = 4 * (2 * g[0] * g[1] + d[0] * d[1])
  # 64 GPUs: all the replicas' factors outnumber both gradients, so both are all-reduced
  assert scaling.collective_bytes_per_gpu(64, total, layers, 64) == pytest.approx(
      2 * 63 / 64 * total)
  # 8 GPUs: G's factors (8 x 64 x 7306) are fewer than its 6.5 M gradient, D's (8 x 128 x
  # 4660) are not: G's two updates all-gather, each GPU receiving 7 other GPUs' factors
  assert scaling.collective_bytes_per_gpu(8, total, layers, 64) == pytest.approx(
      2 * 7 / 8 * 4 * d[0] * d[1] + 2 * 7 * 64 * (g[0] + g[1]) * 4)


# Two lines oneDNN 3.7 printed with ONEDNN_VERBOSE=1 for a weight gradient and a reorder.
VERBOSE_WEIGHTS = (
    "onednn_verbose,v1,primitive,exec,cpu,convolution,jit:avx512_core,backward_weights,"
    "src:f32::blocked:acdb::f0 wei:f32:ap:blocked:Acdb16a::f0 bia:undef::undef::: "
    "dst:f32::blocked:acdb::f0,,alg:convolution_direct,"
    "mb2_ic4oc6_ih8oh4kh5sh2dh0ph1_iw8ow4kw5sw2dw0pw1,0.353027")
VERBOSE_REORDER = ("onednn_verbose,v1,primitive,exec,cpu,reorder,jit:uni,undef,"
                   "src:f32::blocked:cdba::f0 dst:f32:p:blocked:Acdb16a::f0,,,6x4x5x5,3.47705")
# And with ONEDNN_VERBOSE=2, creations: a weight gradient's from the primitive cache, a
# forward's compiled.
VERBOSE_FROM_CACHE = (
    "onednn_verbose,v1,primitive,create:cache_hit,cpu,convolution,jit_bf16:avx512_core_bf16,"
    "backward_weights,src:bf16::blocked:acdb::f0 wei:bf16:a:blocked:ABcd16b16a::f0 "
    "bia:undef::undef::: dst:bf16::blocked:acdb::f0,,alg:convolution_direct,"
    "mb16_ic128oc256_ih16oh8kh5sh2dh0ph1_iw16ow8kw5sw2dw0pw1,0.00610352")
VERBOSE_COMPILED = (
    "onednn_verbose,v1,primitive,create:cache_miss,cpu,convolution,brg_conv_fwd:avx512_core,"
    "forward_training,src:f32::blocked:acdb::f0 wei:f32:ap:blocked:Acdb16a::f0 "
    "bia:undef::undef::: dst:f32::blocked:acdb::f0,attr-scratchpad:user,alg:convolution_direct,"
    "mb10_ic10oc14_ih14oh7kh5sh2dh0ph1_iw14ow7kw5sw2dw0pw1,0.187012")


def test_onednn_kernels_reads_what_each_verbose_line_ran():
  import onednn_kernels
  execution, ms = onednn_kernels.parse_exec(VERBOSE_WEIGHTS)
  assert execution == onednn_kernels.Execution(
      "convolution", "backward_weights", "jit:avx512_core",
      "mb2_ic4oc6_ih8oh4kh5sh2dh0ph1_iw8ow4kw5sw2dw0pw1",
      "src f32 acdb, wei f32 Acdb16a, dst f32 acdb") and ms == 0.353027
  gemm = ("onednn_verbose,v1,primitive,exec,cpu,gemm_api,,undef,src_f32::blocked:ab:f0 "
          "wei_f32::blocked:ab:f0 dst_f32::blocked:ab:f0,,,32x100:100x6,29.3792")
  assert onednn_kernels.parse_exec(gemm)[0].memory == "src f32 ab, wei f32 ab, dst f32 ab"
  assert onednn_kernels.parse_exec("onednn_verbose,v1,info,cpu,runtime:threadpool,nthr:2") is None
  assert onednn_kernels.parse_exec("s/iter 0.3") is None
  # two threads' lines mixed into one are left out and counted, never read as one execution
  mixed = VERBOSE_WEIGHTS[:60] + VERBOSE_REORDER
  assert onednn_kernels.parse_exec(mixed) is None
  # creations are read as creations, never as time spent executing
  event, execution, _ = onednn_kernels.parse_line(VERBOSE_FROM_CACHE)
  assert event == onednn_kernels.FROM_CACHE and execution.propagation == "backward_weights"
  assert onednn_kernels.parse_line(VERBOSE_COMPILED)[0] == onednn_kernels.COMPILED
  assert onednn_kernels.parse_exec(VERBOSE_FROM_CACHE) is None
  lines = [VERBOSE_WEIGHTS, VERBOSE_FROM_CACHE, VERBOSE_REORDER, VERBOSE_COMPILED,
           VERBOSE_WEIGHTS, "other", mixed, VERBOSE_FROM_CACHE, VERBOSE_COMPILED]
  rows, unreadable = onednn_kernels.summarize(lines, 2)
  assert [(e.primitive, round(ms, 6), calls) for e, ms, calls in rows] == [
      ("reorder", 3.47705 / 2, 0.5), ("convolution", 0.353027, 1.0)] and unreadable == 1
  assert onednn_kernels.creations(lines, 2) == {
      "compiled_per_iteration": 1.0, "from_cache_per_iteration": 1.0,
      "compiled": ["convolution forward_training brg_conv_fwd:avx512_core "
                   "mb10_ic10oc14_ih14oh7kh5sh2dh0ph1_iw14ow7kw5sw2dw0pw1"]}


def test_onednn_kernels_bench_lists_the_steps_kernels(tmp_path):
  if not onednn_on():
    pytest.skip("oneDNN is off on this machine: the bench refuses")
  out, (result,) = run_bench(tmp_path, "onednn_kernels.py", "--config", "mnist", "--batch_size",
                             "4", "--filters", "4", "--fc", "16", "--warmup", "1")
  assert "onednn_verbose" not in out  # oneDNN's own lines stay in the traced child's pipe
  (shares,) = [line for line in out.splitlines() if line.startswith("per implementation: ")]
  assert "convolution " in shares, shares
  executions = result["executions"]
  assert {"forward_training", "backward_data", "backward_weights"} <= {
      e["propagation"] for e in executions if e["primitive"] == "convolution"}
  # d_h1_conv's forward (14x14 -> 7x7, 4 + 10 channels out) on a batch of 4: listed, timed
  h1 = [e for e in executions if e["primitive"] == "convolution" and e["problem"].startswith("mb4_")
        and e["propagation"] == "forward_training" and "oc14_ih14oh7" in e["problem"]]
  assert h1 and h1[0]["problem"] in out and h1[0]["ms_per_iteration"] > 0
  times = [e["ms_per_iteration"] for e in executions]
  assert times == sorted(times, reverse=True)
  # and what oneDNN created in the traced iteration (TensorFlow asks again for some primitives
  # at every run, so some come from the cache; a compilation there would be named)
  created = result["primitive_creations"]
  assert created["from_cache_per_iteration"] > 0
  assert (created["compiled_per_iteration"] > 0) == bool(created["compiled"])
  assert "primitives created per iteration: %g compiled, %g from oneDNN's primitive cache" % (
      created["compiled_per_iteration"], created["from_cache_per_iteration"]) in out
  assert result["config"]["kernel_plan"] == hardware.kernel_plan().name
  # read from the traced run itself, and what a probe of this machine says
  assert (result["machine"]["onednn"], result["machine"]["onednn_isa"]) == onednn_probed()


def test_step_ops_traces_each_run_and_finds_each_weight_cast_once_per_run(tmp_path):
  """step_ops at a tiny size: the iteration's three runs (1 D : 2 G) traced, their op time by
  type; in bf16 (where the CPU has it) the rewrite casts each weight it lowers at most once
  per run, however many kernels of the run use it; in fp32 nothing is cast."""
  precision = "bf16" if cpu_supports_bf16() else "fp32"
  out, (result,) = run_bench(tmp_path, "step_ops.py", "--precision", precision, "--steps", "1",
                             "--warmup", "1", "--batch_size", "4", "--filters", "4", "--fc", "16")
  runs = result["runs"]
  assert [run["run"] for run in runs] == ["D 1", "G 2", "G 3"]
  for run in runs:
    assert sum(run["op_ms"].values()) > 0 and run["wall_ms"] > 0
    assert "\n%s: " % run["run"] in out
    if precision == "fp32":
      assert run["weight_casts"] == 0 and run["other_cast_ms"] == 0
    else:
      assert 0 < run["weight_casts"] <= result["config"]["trainable_variables"]
      assert set(run["weight_cast_ms"]) == {"discriminator", "generator"}  # both, every run
  assert "the rewrite's casts: " in out


def documented_command(prefix):
  """The command docs/PERFORMANCE.md gives that starts with `prefix`, as its words."""
  text = open(os.path.join(PROJECT_DIR, "docs", "PERFORMANCE.md")).read()
  (line,) = [l.strip().strip("`") for l in text.splitlines() if l.strip().startswith("`" + prefix)]
  return line.split()


def test_the_amx_command_runs_to_its_end_and_names_the_lowered_forms(tmp_path):
  """The one command PERFORMANCE.md gives an AMX machine, at a tiny size: every model, plan and
  precision timed, then the LOWERED entry its figures ask for."""
  words = documented_command("python bench/train_speed.py --choose_lowered")
  out, results = run_bench(tmp_path, "train_speed.py", *words[2:], "--rounds", "1", "--steps",
                           "1", "--warmup", "1", "--batch_size", "4", "--filters", "4", "--fc",
                           "16", timeout=900)
  kernels = words[words.index("--kernels") + 1:]
  assert [(r["config"]["model"], r["config"]["kernels_spec"], r["config"]["precision"])
          for r in results] == [(m, k, p) for m in ("celebA", "mnist") for k in kernels
                                for p in ("fp32", "bf16")]
  chosen, ratios, forms = train_speed.lowered_choice(results, [common.kernels_spec(k)
                                                               for k in kernels])
  assert out.rstrip().splitlines()[-1].startswith(
      "LOWERED['amx'] = dict(%s)  # the forms of --kernels %s in bf16: celebA %.2fx, mnist %.2fx"
      % (", ".join("%s=%r" % item for item in sorted(forms.items())), chosen.text,
         ratios["celebA"], ratios["mnist"]))


def test_the_lowered_choice_is_the_fastest_spec_no_slower_on_any_model():
  specs = [common.kernels_spec(t) for t in ("amx", "amx+matmul_max_pixels=0",
                                            "amx+matmul_max_pixels=64")]
  def results(seconds):  # {(model, spec): bf16 s/iter}
    return [{"config": {"model": m, "kernels_spec": k, "precision": p}, "s_per_iter": s}
            for (m, k), s in seconds.items() for p in ("fp32", "bf16")]
  # the third is fastest on average but 10% slower on mnist: the second, 1.25x and 1.0x
  chosen, ratios, forms = train_speed.lowered_choice(results({
      ("celebA", "amx"): 1.0, ("celebA", "amx+matmul_max_pixels=0"): 0.8,
      ("celebA", "amx+matmul_max_pixels=64"): 0.5, ("mnist", "amx"): 0.1,
      ("mnist", "amx+matmul_max_pixels=0"): 0.1, ("mnist", "amx+matmul_max_pixels=64"): 0.11}),
      specs)
  assert chosen.text == "amx+matmul_max_pixels=0" and ratios == {"celebA": 1.25, "mnist": 1.0}
  assert forms == train_speed.lowered_forms(common.kernel_plan(specs[1], "bf16"))
  # matmul: the plan's own, 0
  assert forms == dict(layer_grads="chosen", patches_max_pixels=16, patch_slices=True)
  # within the noise of the first: nothing to change
  chosen, _, forms = train_speed.lowered_choice(results({
      ("celebA", "amx"): 1.0, ("celebA", "amx+matmul_max_pixels=0"): 0.99,
      ("celebA", "amx+matmul_max_pixels=64"): 1.2, ("mnist", "amx"): 0.1,
      ("mnist", "amx+matmul_max_pixels=0"): 0.1, ("mnist", "amx+matmul_max_pixels=64"): 0.1}),
      specs)
  assert chosen.text == "amx" and forms == hardware.LOWERED["amx"]
