"""A run's settings as values, each built once and never assigned to (docs/ARCHITECTURE.md):
Config, every flag of main.py as resolved; Folders, where one run's files go; ModelSettings,
what model.DCGAN is built from (the original's constructor arguments and this project's, with
their defaults stated here once).  What changes after a value is built is a new value
(`replace`), so a reader never sees a setting change under it.
"""
import dataclasses
import typing

import hardware
from dataset import label_count, multi_hot
from optim import INITIAL_LOSS_SCALE


class Config(object):
  """The run's effective settings: main.py's flags with their defaults and paths resolved.  Read
  as attributes; a changed setting is a new Config (`replace`), never an assignment."""

  def __init__(self, values):
    object.__setattr__(self, "_values", dict(values))

  def __getattr__(self, name):
    try:
      return self._values[name]
    except KeyError:
      raise AttributeError(name) from None

  def __setattr__(self, name, value):
    raise AttributeError("a Config is not changed: config.replace(%s=...) makes a new one" % name)

  def replace(self, **changes):
    return Config(dict(self._values, **changes))

  def as_dict(self):
    return dict(self._values)


@dataclasses.dataclass(frozen=True)
class Folders:
  """Where one run's files go: its checkpoints, its sample grids and pictures, and the run's
  folder itself (FLAGS.json, logs/, exports)."""
  checkpoint_dir: str
  sample_dir: str
  out_dir: str


@dataclasses.dataclass(frozen=True)
class ModelSettings:
  """What model.DCGAN builds: its fields in the original's constructor's order, with its
  defaults, then this project's (model.DCGAN's docstring says what each does; main.py's flags
  take their defaults from here where the original's flags and constructor agreed)."""
  input_height: int = 108
  input_width: int = 108
  crop: bool = True
  batch_size: int = 64
  sample_num: int = 64
  output_height: int = 64
  output_width: int = 64
  y_dim: typing.Optional[int] = None
  z_dim: int = 100
  gf_dim: int = 64
  df_dim: int = 64
  gfc_dim: int = 1024
  dfc_dim: int = 1024
  c_dim: typing.Optional[int] = None
  dataset_name: str = 'default'
  max_to_keep: int = 1
  input_fname_pattern: str = '*.jpg'
  checkpoint_dir: str = 'ckpts'
  sample_dir: str = 'samples'
  out_dir: str = './out'
  data_dir: str = './data'
  learning_rate: float = 0.0002
  beta1: float = 0.5
  z_dist: str = 'uniform_signed'
  seed: typing.Optional[int] = None
  G_img_sum: bool = False
  precision: typing.Any = 'fp32'
  initial_loss_scale: float = INITIAL_LOSS_SCALE
  kernels: typing.Any = hardware.DEFAULT_KERNELS
  label_names: typing.Optional[typing.Tuple[str, ...]] = None
  multi_hot: bool = False

  def replace(self, **changes):
    return dataclasses.replace(self, **changes)


MODEL_DEFAULTS = ModelSettings()

# The flags a model's settings take as they are, under the same name (main.py's --dataset is the
# model's dataset_name; the folders are the run's, Folders).
MODEL_FLAGS_AS_GIVEN = ("input_height", "input_width", "crop", "batch_size", "output_height",
                        "output_width", "z_dim", "input_fname_pattern", "data_dir", "max_to_keep",
                        "learning_rate", "beta1", "z_dist", "seed", "G_img_sum",
                        "initial_loss_scale", "kernels")


def model_settings(config, folders, description, c_dim, precision):
  """The ModelSettings of a run of main.py: config's (the flags'), the run's folders, what its
  data describes (the dataset package's description: label names, multi-hot or not), its
  image channels and its precision.Precision.  A sample grid holds a batch."""
  labels = description["labels"]
  return ModelSettings(
      dataset_name=config.dataset, sample_num=config.batch_size, y_dim=label_count(description),
      label_names=tuple(labels) if labels else None, multi_hot=multi_hot(description),
      c_dim=c_dim, precision=precision,
      **dataclasses.asdict(folders),
      **{name: getattr(config, name) for name in MODEL_FLAGS_AS_GIVEN})
