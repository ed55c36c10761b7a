"""mmmim's registries.

Each one is a child of mmpretrain's registry of the same kind (scope ``mmmim``), so a
config with ``default_scope='mmmim'`` builds our components by their bare names and
still reaches mmpretrain's, mmdet's and mmseg's with a scope prefix
(``mmpretrain.VisionTransformer``, ``mmdet.MaskRCNN``, ``mmseg.UPerHead``).

Each also lists mmpretrain's module of the same kind among its locations: mmengine
imports only the searched registry's locations, so without it a config naming an
mmpretrain component (``UniversalVisualizer``, ``PackInputs``) would fail to resolve.
"""
from mmpretrain.registry import DATA_SAMPLERS as MMPRE_DATA_SAMPLERS
from mmpretrain.registry import DATASETS as MMPRE_DATASETS
from mmpretrain.registry import HOOKS as MMPRE_HOOKS
from mmpretrain.registry import LOOPS as MMPRE_LOOPS
from mmpretrain.registry import METRICS as MMPRE_METRICS
from mmpretrain.registry import MODELS as MMPRE_MODELS
from mmpretrain.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMPRE_OPTIM_WRAPPER_CONSTRUCTORS
from mmpretrain.registry import OPTIM_WRAPPERS as MMPRE_OPTIM_WRAPPERS
from mmpretrain.registry import OPTIMIZERS as MMPRE_OPTIMIZERS
from mmpretrain.registry import PARAM_SCHEDULERS as MMPRE_PARAM_SCHEDULERS
from mmpretrain.registry import TRANSFORMS as MMPRE_TRANSFORMS
from mmpretrain.registry import VISBACKENDS as MMPRE_VISBACKENDS
from mmpretrain.registry import VISUALIZERS as MMPRE_VISUALIZERS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMPRE_MODELS, scope='mmmim', locations=['mmmim.models', 'mmpretrain.models'])
DATASETS = Registry('dataset', parent=MMPRE_DATASETS, scope='mmmim', locations=['mmmim.datasets', 'mmpretrain.datasets'])
TRANSFORMS = Registry('transform', parent=MMPRE_TRANSFORMS, scope='mmmim', locations=['mmmim.datasets', 'mmpretrain.datasets'])
DATA_SAMPLERS = Registry('data sampler', parent=MMPRE_DATA_SAMPLERS, scope='mmmim', locations=['mmmim.datasets', 'mmpretrain.datasets'])
HOOKS = Registry('hook', parent=MMPRE_HOOKS, scope='mmmim', locations=['mmmim.engine', 'mmpretrain.engine'])
LOOPS = Registry('loop', parent=MMPRE_LOOPS, scope='mmmim', locations=['mmmim.engine', 'mmpretrain.engine'])
OPTIMIZERS = Registry('optimizer', parent=MMPRE_OPTIMIZERS, scope='mmmim', locations=['mmmim.engine', 'mmpretrain.engine'])
OPTIM_WRAPPERS = Registry('optim_wrapper', parent=MMPRE_OPTIM_WRAPPERS, scope='mmmim', locations=['mmmim.engine', 'mmpretrain.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor', parent=MMPRE_OPTIM_WRAPPER_CONSTRUCTORS, scope='mmmim',
    locations=['mmmim.engine', 'mmpretrain.engine'])
PARAM_SCHEDULERS = Registry('parameter scheduler', parent=MMPRE_PARAM_SCHEDULERS, scope='mmmim',
                            locations=['mmmim.engine', 'mmpretrain.engine'])
METRICS = Registry('metric', parent=MMPRE_METRICS, scope='mmmim', locations=['mmmim.evaluation', 'mmpretrain.evaluation'])
VISUALIZERS = Registry('visualizer', parent=MMPRE_VISUALIZERS, scope='mmmim',
                       locations=['mmmim.engine', 'mmpretrain.visualization'])
VISBACKENDS = Registry('vis_backend', parent=MMPRE_VISBACKENDS, scope='mmmim',
                       locations=['mmmim.engine', 'mmpretrain.visualization'])
