"""docs/ARCHITECTURE.md's module table: each module (or package: `dataset/`) imports only modules
in rows below it, and the table names every module of the project; its invariant on the length
of functions."""
import ast
import glob
import json
import os
import re
import subprocess
import sys

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def table_rows():
  """The modules of each row of the table, top to bottom: [['main'], ['runs'], ...]."""
  with open(os.path.join(PROJECT_DIR, "docs", "ARCHITECTURE.md")) as f:
    text = f.read()
  table = text.split("## Modules", 1)[1].split("\n## ", 1)[0]
  rows = []
  for line in table.splitlines():
    cells = line.split("|")
    names = [name for name, kind in re.findall(r"`(\w+)(\.py|/)`", cells[1] if len(cells) > 2
                                                                      else "")
             if kind == ".py" or name in project_modules()]  # bench/ is a folder of programs
    if names:
      rows.append(names)
  return rows


def project_modules():
  """The project's top-level modules and packages (a folder with an __init__.py), by name."""
  return ({name[:-3] for name in os.listdir(PROJECT_DIR) if name.endswith(".py")}
          | {name for name in os.listdir(PROJECT_DIR)
             if os.path.isfile(os.path.join(PROJECT_DIR, name, "__init__.py"))})


def project_imports(module):
  """What a module, or every file of a package, imports (its own modules left out)."""
  package = os.path.join(PROJECT_DIR, module)
  paths = (glob.glob(os.path.join(package, "*.py")) if os.path.isdir(package)
           else [package + ".py"])
  names = set()
  for path in paths:
    with open(path) as f:
      tree = ast.parse(f.read())
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        names.update(alias.name.split(".")[0] for alias in node.names)
      elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
        names.add(node.module.split(".")[0])
  return names - {module}


def test_every_module_imports_only_the_rows_below_it():
  rows = table_rows()
  rank = {module: i for i, row in enumerate(rows) for module in row}
  assert project_modules() == set(rank), "the table and the project's modules differ"
  upward = {(module, imported) for module in rank for imported in project_imports(module)
            if imported in rank and imported != module and rank[imported] <= rank[module]}
  assert upward == set()
  assert rank["training"] < rank["step"] and "model" not in project_imports("training")


def python_files():
  """Every Python file of the project: its modules and packages, bench/ and tests/."""
  files = sorted({path for pattern in ("*.py", "*/__init__.py", "dataset/*.py", "bench/*.py",
                                       "tests/*.py")
                  for path in glob.glob(os.path.join(PROJECT_DIR, pattern))})
  assert len(files) > 30, files
  return files


def test_every_function_is_under_60_lines():
  """ARCHITECTURE.md, invariant 14: every def of the project's Python files, nested ones too."""
  long_ones = []
  for path in python_files():
    with open(path) as f:
      tree = ast.parse(f.read())
    long_ones += ["%s:%d %s (%d lines)" % (os.path.relpath(path, PROJECT_DIR), node.lineno,
                                           node.name, node.end_lineno - node.lineno + 1)
                  for node in ast.walk(tree)
                  if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.end_lineno - node.lineno + 1 >= 60]
  assert long_ones == []


def test_no_module_over_600_lines_or_class_over_400():
  """ARCHITECTURE.md, invariant 15."""
  large = []
  for path in python_files():
    with open(path) as f:
      text = f.read()
    name = os.path.relpath(path, PROJECT_DIR)
    if text.count("\n") > 600:
      large.append("%s (%d lines)" % (name, text.count("\n")))
    large += ["%s:%d class %s (%d lines)" % (name, node.lineno, node.name,
                                             node.end_lineno - node.lineno + 1)
              for node in ast.walk(ast.parse(text))
              if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > 400]
  assert large == []


IMPORT_ALL = r"""
import importlib, json, os, sys
sys.path.insert(0, sys.argv[1])
before = dict(os.environ)
for name in sys.argv[2:]:
  importlib.import_module(name)
import tensorflow as tf
print(json.dumps({"changed": sorted(k for k in set(before) | set(os.environ)
                                    if before.get(k) != os.environ.get(k)),
                  "eager": tf.executing_eagerly()}))
"""


def test_importing_a_module_changes_nothing():
  """ARCHITECTURE.md, invariant 16: every module but the program main.py, imported in a fresh
  process, leaves the environment and TensorFlow's behaviour as they were; the process-wide
  decisions are hardware.import_tensorflow's, called once at a program's start."""
  modules = sorted(project_modules() - {"main"})
  proc = subprocess.run([sys.executable, "-c", IMPORT_ALL, PROJECT_DIR] + modules,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300,
                        env={k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"})
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"changed": [], "eager": True}
