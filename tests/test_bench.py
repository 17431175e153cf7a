"""The benchmarks run and report their fields (no timing is asserted)."""
import json
import os
import subprocess
import sys

from conftest import PROJECT_DIR


def test_data_pipeline_bench_reports_its_fields(tmp_path):
  results = str(tmp_path / "results.jsonl")
  proc = subprocess.run(
      [sys.executable, os.path.join(PROJECT_DIR, "bench", "data_pipeline.py"), "--images", "24",
       "--steps", "2", "--batch_size", "4", "--input_height", "32", "--output_height", "16",
       "--filters", "4", "--results", results],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert proc.returncode == 0, proc.stderr[-2000:]
  for field in ("matmul peak", "cold_1_thread", "cold_2_threads", "cached", "s/step", "waiting for data"):
    assert field in proc.stdout
  (line,) = open(results).read().splitlines()
  result = json.loads(line)
  assert result["train"]["steps"] == 2 and result["config"]["images"] == 24
  assert set(result["loader_images_per_s"]) == {"cold_1_thread", "cold_2_threads", "cached"}
  assert all(v > 0 for v in result["loader_images_per_s"].values())
  assert 0 <= result["train"]["data_wait_fraction"] < 1
  assert isinstance(result["meets_target"], bool)
  assert result["machine"]["fp32_matmul_peak_gflops"] > 0
