"""Robustness metrics: ImageNet-C mCE and accuracy on a 200-class ImageNet subset.

Both are mmengine metrics registered in ``mmmim.registry.METRICS``, so a config's
``test_evaluator`` names them and ``tools/test.py CONFIG CHECKPOINT`` reports them
for any 1000-way ImageNet classifier (see configs/robustness/).
"""
import os.path as osp
import re
from collections import defaultdict
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from mmmim.registry import METRICS

# Top-1 error of AlexNet on each ImageNet-C corruption, averaged over the five
# severities: the normaliser of the Corruption Error in Hendrycks & Dietterich,
# "Benchmarking Neural Network Robustness to Common Corruptions and Perturbations"
# (ICLR 2019), as released with the benchmark (github.com/hendrycks/robustness).
# Order: noise, blur, weather, digital -- the 15 corruptions that make up mCE.
ALEXNET_ERRORS = {
    'gaussian_noise': 0.886428,
    'shot_noise': 0.894468,
    'impulse_noise': 0.922640,
    'defocus_blur': 0.819880,
    'glass_blur': 0.826268,
    'motion_blur': 0.785948,
    'zoom_blur': 0.798360,
    'snow': 0.866816,
    'frost': 0.826572,
    'fog': 0.819324,
    'brightness': 0.564592,
    'contrast': 0.853204,
    'elastic_transform': 0.646056,
    'pixelate': 0.717840,
    'jpeg_compression': 0.606500,
}
CORRUPTIONS = tuple(ALEXNET_ERRORS)
SEVERITIES = (1, 2, 3, 4, 5)

# ImageNet-1k indices (0-999, the order of the sorted WordNet ids) of the 200 classes
# of ImageNet-A (Hendrycks et al., "Natural Adversarial Examples", CVPR 2021) and of
# ImageNet-R (Hendrycks et al., "The Many Faces of Robustness", ICCV 2021), i.e. the
# WordNet ids listed with each data set, mapped to 1k indices. Both data sets ship
# as 200 folders named by WordNet id; sorted, folder i is class INDICES[i].
IMAGENET_A_INDICES = (
    6, 11, 13, 15, 17, 22, 23, 27, 30, 37, 39, 42, 47, 50, 57, 70, 71, 76, 79, 89, 90, 94, 96,
    97, 99, 105, 107, 108, 110, 113, 124, 125, 130, 132, 143, 144, 150, 151, 207, 234, 235, 254,
    277, 283, 287, 291, 295, 298, 301, 306, 307, 308, 309, 310, 311, 313, 314, 315, 317, 319,
    323, 324, 326, 327, 330, 334, 335, 336, 347, 361, 363, 372, 378, 386, 397, 400, 401, 402,
    404, 407, 411, 416, 417, 420, 425, 428, 430, 437, 438, 445, 456, 457, 461, 462, 470, 472,
    483, 486, 488, 492, 496, 514, 516, 528, 530, 539, 542, 543, 549, 552, 557, 561, 562, 569,
    572, 573, 575, 579, 589, 606, 607, 609, 614, 626, 627, 640, 641, 642, 643, 658, 668, 677,
    682, 684, 687, 701, 704, 719, 736, 746, 749, 752, 758, 763, 765, 768, 773, 774, 776, 779,
    780, 786, 792, 797, 802, 803, 804, 813, 815, 820, 823, 831, 833, 835, 839, 845, 847, 850,
    859, 862, 870, 879, 880, 888, 890, 897, 900, 907, 913, 924, 932, 933, 934, 937, 943, 945,
    947, 951, 954, 956, 957, 959, 971, 972, 980, 981, 984, 986, 987, 988,
)
IMAGENET_R_INDICES = (
    1, 2, 4, 6, 8, 9, 11, 13, 22, 23, 26, 29, 31, 39, 47, 63, 71, 76, 79, 84, 90, 94, 96, 97,
    99, 100, 105, 107, 113, 122, 125, 130, 132, 144, 145, 147, 148, 150, 151, 155, 160, 161,
    162, 163, 171, 172, 178, 187, 195, 199, 203, 207, 208, 219, 231, 232, 234, 235, 242, 245,
    247, 250, 251, 254, 259, 260, 263, 265, 267, 269, 276, 277, 281, 288, 289, 291, 292, 293,
    296, 299, 301, 308, 309, 310, 311, 314, 315, 319, 323, 327, 330, 334, 335, 337, 338, 340,
    341, 344, 347, 353, 355, 361, 362, 365, 366, 367, 368, 372, 388, 390, 393, 397, 401, 407,
    413, 414, 425, 428, 430, 435, 437, 441, 447, 448, 457, 462, 463, 469, 470, 471, 472, 476,
    483, 487, 515, 546, 555, 558, 570, 579, 583, 587, 593, 594, 596, 609, 613, 617, 621, 629,
    637, 657, 658, 701, 717, 724, 763, 768, 774, 776, 779, 780, 787, 805, 812, 815, 820, 824,
    833, 847, 852, 866, 875, 883, 889, 895, 907, 928, 931, 932, 933, 934, 936, 937, 943, 945,
    947, 948, 949, 951, 953, 954, 957, 963, 965, 967, 980, 981, 983, 988,
)
SUBSETS = {'imagenet-a': IMAGENET_A_INDICES, 'imagenet-r': IMAGENET_R_INDICES}


def corruption_errors(errors: Mapping[Tuple[str, int], float],
                      alexnet_errors: Mapping[str, float] = ALEXNET_ERRORS,
                      severities: Sequence[int] = SEVERITIES) -> Tuple[Dict[str, float], List[str]]:
    """Corruption Error per corruption, in percent.

    ``CE_c = sum_s E(c, s) / sum_s E_AlexNet(c, s)``; the AlexNet table holds the
    mean over severities, so the denominator is ``len(severities) * alexnet[c]``.

    Args:
        errors: top-1 error (fraction in [0, 1]) for each ``(corruption, severity)``.
        alexnet_errors: normaliser per corruption (mean AlexNet error over severities).
        severities: the severities every corruption must have.
    Returns:
        ``({corruption: CE in %}, [corruptions skipped because a severity is missing])``.
    """
    ce, incomplete = {}, []
    for corruption, alexnet in alexnet_errors.items():
        present = [s for s in severities if (corruption, s) in errors]
        if not present:
            continue
        if len(present) < len(severities):
            incomplete.append(corruption)
            continue
        total = sum(errors[(corruption, s)] for s in severities)
        ce[corruption] = 100. * total / (len(severities) * alexnet)
    return ce, incomplete


def mean_corruption_error(errors: Mapping[Tuple[str, int], float],
                          alexnet_errors: Mapping[str, float] = ALEXNET_ERRORS) -> float:
    """mCE (%) over every corruption of ``alexnet_errors``; all must be complete."""
    ce, incomplete = corruption_errors(errors, alexnet_errors)
    missing = sorted(set(alexnet_errors) - set(ce))
    if missing:
        raise ValueError(f'mCE needs all {len(SEVERITIES)} severities of every corruption; '
                         f'missing or incomplete: {missing}. Evaluate the full ImageNet-C '
                         f'(configs/robustness/vit-b_imagenet-c.py) or read the per-corruption '
                         f'CE instead')
    return sum(ce.values()) / len(ce)


_SEVERITY_DIR = re.compile(r'^[1-9]$')


def parse_corruption(img_path: str, corruptions: Sequence[str]) -> Tuple[str, int]:
    """``(corruption, severity)`` from an ImageNet-C path ``.../<corruption>/<s>/<wnid>/<file>``."""
    parts = osp.normpath(img_path).replace('\\', '/').split('/')
    for i in range(len(parts) - 1):
        if parts[i] in corruptions and _SEVERITY_DIR.match(parts[i + 1]):
            return parts[i], int(parts[i + 1])
    raise ValueError(f'cannot tell the corruption and severity of {img_path!r}: ImageNet-C '
                     f'images must lie in <root>/<corruption>/<severity>/<wnid>/ with the '
                     f'corruption one of {list(corruptions)}; or put "corruption" and '
                     f'"severity" in the data sample metainfo')


def _label(value) -> int:
    return int(torch.as_tensor(value).reshape(-1)[0])


@METRICS.register_module()
class CorruptionError(BaseMetric):
    """ImageNet-C: top-1 error per corruption and severity, CE per corruption, mCE.

    Why it exists: mmpretrain's ``Accuracy`` pools all images; ImageNet-C's score
    needs them grouped by corruption and severity and normalised by AlexNet's errors
    (:data:`ALEXNET_ERRORS`, Hendrycks & Dietterich, ICLR 2019).

    Each sample's corruption and severity come from its metainfo keys
    ``corruption`` / ``severity`` when present, else from ``img_path``
    (``<root>/<corruption>/<severity>/<wnid>/<file>``, the layout the data set ships in).

    Config keys:
        alexnet_errors (dict | None): normaliser per corruption, default the 15 of
            :data:`ALEXNET_ERRORS`; pass your own to add the 4 extra corruptions or to
            normalise by another reference model.
        collect_device, prefix: as mmengine's ``BaseMetric`` (prefix default 'imagenet-c').

    Results: ``mCE`` (%, only when all corruptions have all 5 severities), ``CE/<c>``
    (%), ``error/<c>`` (mean top-1 error over severities, %), ``error/<c>/<s>`` (%) and
    ``accuracy`` (top-1 over every image, %).
    """
    default_prefix = 'imagenet-c'

    def __init__(self, alexnet_errors: Optional[Dict[str, float]] = None,
                 collect_device: str = 'cpu', prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.alexnet_errors = dict(ALEXNET_ERRORS if alexnet_errors is None else alexnet_errors)
        for name, value in self.alexnet_errors.items():
            if not 0 < value <= 1:
                raise ValueError(f'CorruptionError: alexnet_errors[{name!r}] = {value} must be a '
                                 f'fraction in (0, 1] (an error rate, not a percentage)')

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            if 'corruption' in sample and 'severity' in sample:
                corruption, severity = sample['corruption'], int(sample['severity'])
            else:
                corruption, severity = parse_corruption(sample['img_path'], self.alexnet_errors)
            if 'pred_label' in sample:
                pred = _label(sample['pred_label'])
            else:
                pred = int(torch.as_tensor(sample['pred_score']).argmax())
            correct = pred == _label(sample['gt_label'])
            self.results.append((corruption, severity, bool(correct)))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        counts = defaultdict(lambda: [0, 0])  # (corruption, severity) -> [wrong, total]
        for corruption, severity, correct in results:
            counts[(corruption, severity)][0] += int(not correct)
            counts[(corruption, severity)][1] += 1
        errors = {key: wrong / total for key, (wrong, total) in counts.items()}
        metrics = {}
        for (corruption, severity), err in sorted(errors.items()):
            metrics[f'error/{corruption}/{severity}'] = 100. * err
        ce, incomplete = corruption_errors(errors, self.alexnet_errors)
        for corruption, value in ce.items():
            metrics[f'CE/{corruption}'] = value
            metrics[f'error/{corruption}'] = 100. * sum(
                errors[(corruption, s)] for s in SEVERITIES) / len(SEVERITIES)
        missing = sorted(set(self.alexnet_errors) - set(ce))
        if missing:
            MMLogger.get_current_instance().warning(
                f'CorruptionError: no mCE, because these corruptions are missing or lack a '
                f'severity: {missing} (incomplete: {incomplete}); CE is reported per corruption')
        else:
            metrics['mCE'] = sum(ce.values()) / len(ce)
        metrics['accuracy'] = 100. * sum(c for *_, c in results) / max(len(results), 1)
        return metrics


def load_class_indices(path: str) -> Tuple[int, ...]:
    """Read a class-index file: one ImageNet-1k index (0-999) per line, '#' comments."""
    with open(path) as f:
        lines = [line.split('#')[0].strip() for line in f]
    try:
        return tuple(int(line) for line in lines if line)
    except ValueError as e:
        raise ValueError(f'{path}: expected one integer ImageNet-1k index per line ({e})') from None


@METRICS.register_module()
class SubsetAccuracy(BaseMetric):
    """Top-k accuracy of a 1000-way classifier on a data set of a subset of the classes.

    Why it exists: ImageNet-A and ImageNet-R cover 200 of the 1000 classes; their
    protocol keeps only those 200 logits (a prediction outside the subset is not
    possible), which mmpretrain's ``Accuracy`` does not do.

    The data set's labels are positions in the subset (0..n-1; a folder-per-class data
    set of the WordNet-id folders gives exactly this) when ``gt_in_subset=True``, or
    1000-way labels otherwise.

    Config keys:
        subset (str | None): 'imagenet-a' or 'imagenet-r' for the built-in index lists.
        class_indices (list[int] | None): the subset's ImageNet-1k indices, instead.
        index_file (str | None): a file with one index per line, instead.
            Exactly one of the three must be given. Indices are sorted, so that subset
            position i is the i-th smallest index (= the i-th sorted WordNet id).
        topk (tuple[int]): default (1, ).
        gt_in_subset (bool): labels are subset positions (default True).
        collect_device, prefix: as mmengine's ``BaseMetric`` (prefix default 'subset').

    Results: ``top<k>`` (%) for each k.
    """
    default_prefix = 'subset'

    def __init__(self, subset: Optional[str] = None, class_indices: Optional[Sequence[int]] = None,
                 index_file: Optional[str] = None, topk: Sequence[int] = (1, ),
                 gt_in_subset: bool = True, collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        given = [name for name, v in (('subset', subset), ('class_indices', class_indices),
                                      ('index_file', index_file)) if v is not None]
        if len(given) != 1:
            raise ValueError(f'SubsetAccuracy: give exactly one of subset (one of '
                             f'{sorted(SUBSETS)}), class_indices or index_file; '
                             f'got {given or "none"}')
        if subset is not None:
            if subset not in SUBSETS:
                raise ValueError(f'SubsetAccuracy: unknown subset {subset!r}; choose from '
                                 f'{sorted(SUBSETS)} or pass class_indices / index_file')
            indices = SUBSETS[subset]
        elif index_file is not None:
            indices = load_class_indices(index_file)
        else:
            indices = tuple(int(i) for i in class_indices)
        if len(set(indices)) != len(indices):
            raise ValueError('SubsetAccuracy: class indices contain duplicates')
        self.class_indices = sorted(indices)
        self.topk = tuple(topk)
        if max(self.topk) > len(self.class_indices):
            raise ValueError(f'SubsetAccuracy: topk {self.topk} exceeds the subset size '
                             f'{len(self.class_indices)}')
        self.gt_in_subset = gt_in_subset
        self._position = {c: i for i, c in enumerate(self.class_indices)}

    def _check_dataset(self) -> None:
        classes = (self.dataset_meta or {}).get('classes')
        if self.gt_in_subset and classes is not None and len(classes) != len(self.class_indices):
            raise ValueError(f'SubsetAccuracy: the data set has {len(classes)} classes but the '
                             f'subset {len(self.class_indices)}; labels would not line up with '
                             f'the subset positions. Point the data set at the folder holding '
                             f'all {len(self.class_indices)} class folders')

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        self._check_dataset()
        index = torch.as_tensor(self.class_indices)
        for sample in data_samples:
            scores = torch.as_tensor(sample['pred_score']).reshape(-1)
            if scores.numel() <= int(index.max()):
                raise ValueError(f'SubsetAccuracy: the model gives {scores.numel()} scores but the '
                                 f'subset names class {int(index.max())}; it needs the full '
                                 f'1000-way head')
            ranked = scores[index].topk(max(self.topk)).indices.tolist()  # subset positions
            gt = _label(sample['gt_label'])
            if not self.gt_in_subset:
                if gt not in self._position:
                    raise ValueError(f'SubsetAccuracy: label {gt} is not in the subset; set '
                                     f'gt_in_subset=True if labels are subset positions')
                gt = self._position[gt]
            elif not 0 <= gt < len(self.class_indices):
                raise ValueError(f'SubsetAccuracy: label {gt} outside '
                                 f'0..{len(self.class_indices) - 1}; '
                                 f'the data set should have one folder per subset class '
                                 f'(or set gt_in_subset=False for 1000-way labels)')
            self.results.append([gt in ranked[:k] for k in self.topk])

    def compute_metrics(self, results: list) -> Dict[str, float]:
        n = max(len(results), 1)
        return {f'top{k}': 100. * sum(r[i] for r in results) / n
                for i, k in enumerate(self.topk)}
