"""hardware.py: the oneDNN decision, the CPU kind, and the kernel plan per kind of device."""
import os
import subprocess
import sys

import pytest

import hardware
import precision as precision_module
from conftest import PROJECT_DIR

AVX2_EPYC = {"fpu", "sse4_2", "avx", "avx2", "fma", "f16c"}
AVX512_BF16_EPYC = AVX2_EPYC | {"avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16"}
SAPPHIRE_RAPIDS = AVX512_BF16_EPYC | {"amx_tile", "amx_bf16", "amx_int8"}


@pytest.mark.parametrize("machine", ["x86_64", "AMD64"])
def test_onednn_is_turned_on_for_x86_before_tensorflow_loads(machine):
  environ = {}
  assert hardware.configure(environ, machine=machine, modules={}) == "dcgan"
  assert environ == {"TF_ENABLE_ONEDNN_OPTS": "1"}


@pytest.mark.parametrize("value", ["0", "1", "false"])
def test_the_users_onednn_setting_always_wins(value):
  environ = {"TF_ENABLE_ONEDNN_OPTS": value}
  assert hardware.configure(environ, machine="x86_64", modules={}) == "user"
  assert environ == {"TF_ENABLE_ONEDNN_OPTS": value}


def test_other_architectures_and_late_calls_are_left_alone():
  environ = {}
  assert hardware.configure(environ, machine="aarch64", modules={}) == "tensorflow"
  assert hardware.configure(environ, machine="x86_64", modules={"tensorflow": object()}) == "too late"
  assert environ == {}


def run_python(code, **env):
  environ = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
  environ.update(env, TF_CPP_MIN_LOG_LEVEL="3")
  proc = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, env=environ, timeout=300,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  assert proc.returncode == 0, proc.stderr[-2000:]
  return proc.stdout


@pytest.mark.skipif(hardware.platform.machine().lower() not in hardware.X86_MACHINES,
                    reason="the default is for x86 CPUs")
def test_a_program_started_as_main_py_runs_tensorflow_with_onednn_unless_the_user_said_no():
  # a convolution in a process started as main.py starts (hardware.import_tensorflow, then the
  # model), oneDNN's verbose mode saying who ran it (as hardware.onednn_probe asks its child)
  code = ("import hardware; tf = hardware.import_tensorflow(); import model; "
          "x = tf.random.uniform([1, 8, 8, 4]); "
          "tf.Session().run(tf.nn.conv2d(x, tf.ones([3, 3, 4, 4]), 1, 'SAME')); "
          "print('decided_by', hardware.decided_by)")
  for environ, decided_by, onednn in (({}, "dcgan", True),
                                      ({"TF_ENABLE_ONEDNN_OPTS": "0"}, "user", False)):
    lines = run_python(code, ONEDNN_VERBOSE="1", **environ).splitlines()
    assert "decided_by " + decided_by in lines
    assert hardware.onednn_reported(lines)[0] == onednn


@pytest.mark.parametrize("flags,environ,kind,bf16", [
    (AVX2_EPYC, {}, "avx2", False),
    (AVX512_BF16_EPYC, {}, "avx512", True),
    (SAPPHIRE_RAPIDS, {}, "amx", True),
    (AVX512_BF16_EPYC, {"ONEDNN_MAX_CPU_ISA": "AVX2"}, "avx2", False),
    (AVX512_BF16_EPYC, {"ONEDNN_MAX_CPU_ISA": "avx512_core"}, "avx512", False),
    (SAPPHIRE_RAPIDS, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, "avx512", True),
    (SAPPHIRE_RAPIDS, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"}, "amx", True),
    (AVX512_BF16_EPYC, {"ONEDNN_MAX_CPU_ISA": "ALL"}, "avx512", True),
    ({"fpu", "sse4_2", "avx"}, {}, "cpu", False),
    (AVX2_EPYC, {"ONEDNN_MAX_CPU_ISA": "SSE41"}, "cpu", False),
    (set(), {}, "cpu", False),
])
def test_cpu_kind_follows_the_instruction_set_oneDNN_may_use(flags, environ, kind, bf16):
  assert hardware.cpu_kind(flags, environ) == kind
  assert hardware.cpu_features(flags, environ)["bf16"] == bf16


def test_cpu_info_reads_model_and_flags(tmp_path):
  cpuinfo = tmp_path / "cpuinfo"
  cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu avx2 fma avx512f\n\n"
                     "processor\t: 1\nmodel name\t: other\nflags\t\t: fpu\n")
  assert hardware.cpu_info(str(cpuinfo)) == ("AMD EPYC 9R14", {"fpu", "avx2", "fma", "avx512f"})
  model, flags = hardware.cpu_info(str(tmp_path / "missing"))
  assert model and flags == set()


@pytest.mark.parametrize("device,plan", [("gpu", "gpu"), ("amx", "amx"), ("avx512", "avx512"),
                                         ("avx2", "avx2"), ("cpu", "cpu")])
def test_the_plan_is_the_device_kinds(monkeypatch, device, plan):
  monkeypatch.setattr(hardware, "device_kind", lambda: device)
  assert hardware.kernel_plan() is hardware.PLANS[plan]
  assert hardware.kernel_plan(hardware.DEFAULT_KERNELS) is hardware.PLANS[plan]
  assert hardware.kernel_plan("plain") is hardware.PLANS["plain"]
  assert hardware.kernel_plan() is hardware.PLANS[plan]  # naming a plan leaves nothing behind


def test_gpus_and_unmeasured_cpus_get_tensorflows_plain_ops():
  plain = hardware.PLANS["plain"]
  for kind in ("gpu", "cpu"):
    assert hardware.PLANS[kind]._replace(name="plain") == plain
  assert not (plain.label_term or plain.linear_input_grad or plain.small_deconv
              or plain.small_input_grad or plain.patches_max_pixels or plain.inter_op_threads)
  assert plain.layer_grads == "autodiff"


def test_kernels_names_a_plan_to_compare(monkeypatch):
  monkeypatch.setattr(hardware, "device_kind", lambda: "avx512")
  assert set(hardware.KERNEL_CHOICES) == {hardware.DEFAULT_KERNELS} | set(hardware.PLANS)
  for name in hardware.PLANS:
    assert hardware.kernel_plan(name) is hardware.PLANS[name]
  with pytest.raises(ValueError, match="--kernels fastest names no kernel plan"):
    hardware.kernel_plan("fastest")


def test_a_lowered_plan_keeps_batch_statistics_float32_and_takes_its_measured_forms(monkeypatch):
  # lowered: batch statistics by the fused kernel (float32); the avx512 plan's 4x4 weight
  # gradients by patches and a matmul; the rest of every plan unchanged
  avx2, avx512 = hardware.PLANS["avx2"], hardware.PLANS["avx512"]
  assert avx2.batch_norm_stats == "matmul"
  assert hardware.kernel_plan("avx2", lowered=True) == avx2._replace(batch_norm_stats="fused")
  assert hardware.kernel_plan("avx512", lowered=True) == avx512._replace(
      layer_grads="chosen", patches_max_pixels=16)
  for name in hardware.PLANS:
    if name not in ("avx2", "avx512", "amx"):  # (amx: the next test)
      assert hardware.kernel_plan(name, lowered=True) == hardware.PLANS[name]
  monkeypatch.setattr(hardware, "device_kind", lambda: "avx2")
  assert hardware.kernel_plan(lowered=True) == avx2._replace(batch_norm_stats="fused")
  assert hardware.PLANS["avx2"] is avx2 and avx2.batch_norm_stats == "matmul"  # PLANS untouched
  assert hardware.PLANS["avx512"] is avx512 and avx512.layer_grads == "autodiff"


def test_the_amx_kind_has_a_plan_of_its_own_with_the_forms_it_was_measured_with():
  amx = hardware.PLANS["amx"]
  assert amx._replace(name="avx512") == hardware.PLANS["avx512"]  # fp32: avx512's forms
  # bf16: avx512's lowered forms, the 4x4 layers' forward and input gradient by matmul, and
  # patches by slices
  lowered = hardware.kernel_plan("amx", lowered=True)
  assert lowered == hardware.kernel_plan("avx512", lowered=True)._replace(
      name="amx", matmul_max_pixels=16, patch_slices=True)
  assert not any(plan.patch_slices for plan in hardware.PLANS.values())  # fp32: as measured
  assert hardware.PLANS["avx512"].matmul_max_pixels == 0  # the EPYC's as measured there


@pytest.mark.parametrize("device,inter_op", [("avx2", 1), ("avx512", 0), ("gpu", 0)])
def test_session_threads_come_from_the_plan_unless_given(monkeypatch, device, inter_op):
  monkeypatch.setattr(hardware, "device_kind", lambda: device)
  assert precision_module.session_config().inter_op_parallelism_threads == inter_op
  assert precision_module.session_config(inter_op_threads=2).inter_op_parallelism_threads == 2


@pytest.mark.skipif(hardware.platform.machine().lower() not in hardware.X86_MACHINES,
                    reason="oneDNN's ISA cap is an x86 matter")
def test_onednn_isa_reports_what_oneDNN_dispatches(monkeypatch):
  monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
  monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "SSE41")
  assert hardware.onednn_probe()[1] == "Intel SSE4.1"  # the cap is obeyed, and read back
  monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX")
  assert hardware.onednn_probe()[1] == "Intel AVX"
