"""Robustness metrics: mCE arithmetic, the 200-class restriction, the class lists."""
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmpretrain.structures import DataSample

from mmmim.evaluation.robustness import (ALEXNET_ERRORS, CORRUPTIONS, IMAGENET_A_INDICES,
                                         IMAGENET_R_INDICES, CorruptionError, SubsetAccuracy,
                                         corruption_errors, load_class_indices,
                                         mean_corruption_error, parse_corruption)
from mmmim.registry import METRICS


def test_alexnet_table_is_the_published_one():
    assert len(ALEXNET_ERRORS) == 15
    assert CORRUPTIONS[0] == 'gaussian_noise' and CORRUPTIONS[-1] == 'jpeg_compression'
    assert ALEXNET_ERRORS['gaussian_noise'] == 0.886428
    assert ALEXNET_ERRORS['brightness'] == 0.564592
    assert ALEXNET_ERRORS['jpeg_compression'] == 0.606500


def test_corruption_error_by_hand():
    # two corruptions, 5 severities each
    alexnet = {'fog': 0.8, 'snow': 0.5}
    errors = {('fog', s): e for s, e in zip(range(1, 6), (0.1, 0.2, 0.3, 0.4, 0.5))}
    errors.update({('snow', s): 0.25 for s in range(1, 6)})
    ce, incomplete = corruption_errors(errors, alexnet)
    # fog: (0.1+0.2+0.3+0.4+0.5) / (5*0.8) = 1.5 / 4 = 37.5 %; snow: 1.25 / 2.5 = 50 %
    assert ce == pytest.approx({'fog': 37.5, 'snow': 50.0})
    assert incomplete == []
    assert mean_corruption_error(errors, alexnet) == pytest.approx(43.75)


def test_model_as_bad_as_alexnet_has_mce_100():
    errors = {(c, s): e for c, e in ALEXNET_ERRORS.items() for s in range(1, 6)}
    assert mean_corruption_error(errors) == pytest.approx(100.0)


def test_mce_refuses_incomplete_results():
    errors = {('fog', s): 0.5 for s in range(1, 5)}  # severity 5 missing
    ce, incomplete = corruption_errors(errors)
    assert ce == {} and incomplete == ['fog']
    with pytest.raises(ValueError, match='missing or incomplete'):
        mean_corruption_error(errors)


def test_parse_corruption_from_path():
    assert parse_corruption('/d/imagenet-c/motion_blur/3/n01440764/x.JPEG',
                            CORRUPTIONS) == ('motion_blur', 3)
    with pytest.raises(ValueError, match='<corruption>/<severity>'):
        parse_corruption('/d/imagenet/val/n01440764/x.JPEG', CORRUPTIONS)


def _cls_sample(pred: int, gt: int, num_classes: int = 1000, **meta):
    scores = torch.zeros(num_classes)
    scores[pred] = 1.
    return DataSample(metainfo=meta).set_gt_label(gt).set_pred_score(scores)


def test_corruption_error_metric_end_to_end():
    """Two corruptions x 5 severities, 4 images each; errors chosen per cell."""
    alexnet = {'fog': 0.8, 'snow': 0.5}
    evaluator = Evaluator(METRICS.build(dict(type='CorruptionError', alexnet_errors=alexnet)))
    wrong = {'fog': (0, 1, 1, 2, 4), 'snow': (1, 1, 1, 1, 1)}  # wrong images of 4 per severity
    samples = []
    for corruption, counts in wrong.items():
        for severity, n_wrong in zip(range(1, 6), counts):
            for i in range(4):
                path = f'root/{corruption}/{severity}/n000/{i}.JPEG'
                samples.append(_cls_sample(pred=1 if i < n_wrong else 0, gt=0, img_path=path))
    evaluator.process(samples)
    metrics = evaluator.evaluate(len(samples))
    # fog errors 0, .25, .25, .5, 1 -> sum 2.0 / (5 * 0.8) = 50 %; snow 1.25 / 2.5 = 50 %
    assert metrics['imagenet-c/CE/fog'] == pytest.approx(50.0)
    assert metrics['imagenet-c/CE/snow'] == pytest.approx(50.0)
    assert metrics['imagenet-c/mCE'] == pytest.approx(50.0)
    assert metrics['imagenet-c/error/fog/5'] == pytest.approx(100.0)
    assert metrics['imagenet-c/error/fog'] == pytest.approx(40.0)
    assert metrics['imagenet-c/accuracy'] == pytest.approx(100 * (40 - 13) / 40)


def test_corruption_error_metric_without_all_corruptions_gives_no_mce():
    metric = CorruptionError()
    samples = [_cls_sample(0, 0, img_path=f'r/fog/{s}/n0/a.JPEG').to_dict() for s in range(1, 6)]
    metric.process(None, samples)
    out = metric.compute_metrics(metric.results)
    assert 'mCE' not in out and out['CE/fog'] == 0.0


def test_corruption_error_rejects_percentages():
    with pytest.raises(ValueError, match='fraction'):
        CorruptionError(alexnet_errors={'fog': 81.9})


@pytest.mark.parametrize('indices', [IMAGENET_A_INDICES, IMAGENET_R_INDICES])
def test_subset_lists_are_well_formed(indices):
    assert len(indices) == 200 and len(set(indices)) == 200
    assert list(indices) == sorted(indices) and 0 <= indices[0] and indices[-1] < 1000


def test_subset_lists_spot_values():
    assert IMAGENET_A_INDICES[:5] == (6, 11, 13, 15, 17) and IMAGENET_A_INDICES[-1] == 988
    assert IMAGENET_A_INDICES[38:40] == (207, 234)  # no class between 151 and 207
    assert IMAGENET_R_INDICES[:5] == (1, 2, 4, 6, 8) and IMAGENET_R_INDICES[-1] == 988


def test_subset_accuracy_restricts_the_logits():
    """The 1000-way argmax may lie outside the subset; only subset logits count."""
    metric = SubsetAccuracy(class_indices=[5, 2, 9], topk=(1, 2))  # sorted: 2, 5, 9
    scores = torch.full((3, 1000), -1.)
    scores[:, 0] = 10.                   # the best class overall is not in the subset
    scores[0, 5], scores[0, 9] = 3., 2.  # subset best: 5 -> position 1
    scores[1, 2], scores[1, 9] = 1., 2.  # subset best: 9 -> position 2, then 2 -> position 0
    scores[2, 2] = 0.5                   # subset best: 2 -> position 0
    gts = [1, 0, 2]
    samples = [DataSample().set_gt_label(g).set_pred_score(s).to_dict() for g, s in zip(gts, scores)]
    metric.process(None, samples)
    out = metric.compute_metrics(metric.results)
    # top-1: hit, miss (9 vs 2), miss (2 vs 9); top-2: hit, hit (2 is second), miss
    assert out['top1'] == pytest.approx(100 / 3)
    assert out['top2'] == pytest.approx(200 / 3)


def test_subset_accuracy_with_1000_way_labels_and_builtin_list():
    metric = SubsetAccuracy(subset='imagenet-a', gt_in_subset=False)
    scores = torch.zeros(1000)
    scores[999] = 5.  # outside ImageNet-A: ignored
    scores[11] = 1.
    metric.process(None, [DataSample().set_gt_label(11).set_pred_score(scores).to_dict()])
    assert metric.compute_metrics(metric.results) == {'top1': 100.0}
    with pytest.raises(ValueError, match='not in the subset'):
        metric.process(None, [DataSample().set_gt_label(0).set_pred_score(scores).to_dict()])


def test_subset_accuracy_checks_dataset_size():
    metric = SubsetAccuracy(subset='imagenet-r')
    metric.dataset_meta = dict(classes=[f'n{i}' for i in range(199)])
    with pytest.raises(ValueError, match='199 classes but the subset 200'):
        metric.process(None, [_cls_sample(0, 0).to_dict()])


def test_subset_accuracy_config_errors(tmp_path):
    with pytest.raises(ValueError, match='exactly one'):
        SubsetAccuracy()
    with pytest.raises(ValueError, match='exactly one'):
        SubsetAccuracy(subset='imagenet-a', class_indices=[1])
    with pytest.raises(ValueError, match='unknown subset'):
        SubsetAccuracy(subset='imagenet-x')
    path = tmp_path / 'idx.txt'
    path.write_text('# my subset\n7\n3  # comment\n\n1\n')
    assert load_class_indices(str(path)) == (7, 3, 1)
    assert SubsetAccuracy(index_file=str(path)).class_indices == [1, 3, 7]
    path.write_text('n01440764\n')
    with pytest.raises(ValueError, match='one integer'):
        load_class_indices(str(path))
