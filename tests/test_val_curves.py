"""tools/analysis/val_curves.py: curves read across resumed sittings, arms averaged, and
differences called only beyond the spread (the runs' logs are written by hand here)."""
import json
import os

import pytest

from conftest import load_tool

vc = load_tool('tools/analysis/val_curves.py')


def write_sitting(work_dir, stamp, records):
    d = work_dir / stamp / 'vis_data'
    d.mkdir(parents=True)
    with open(d / 'scalars.json', 'w') as f:
        for rec in records:
            f.write(json.dumps(rec) + '\n')


def val(epoch, top1):
    return {'accuracy/top1': top1, 'data_time': 0.01, 'time': 1.0, 'step': epoch}


def run(tmp_path, name, curve):
    work_dir = tmp_path / name
    write_sitting(work_dir, '20260101_000000', [val(e, v) for e, v in curve.items()])
    return str(work_dir)


def test_a_resumed_run_reads_as_one_curve_and_the_later_sitting_wins(tmp_path):
    work_dir = tmp_path / 'run'
    write_sitting(work_dir, '20260101_000000', [
        {'loss': 2.3, 'step': 50}, val(5, 80.0), {'loss': 1.1, 'step': 100}, val(10, 50.0)])
    # stopped after epoch 10's validation but before its checkpoint: epoch 10 runs again
    write_sitting(work_dir, '20260102_000000', [val(10, 85.5), {'loss': 0.9, 'step': 150},
                                                val(15, 88.25)])
    assert vc.read_curve(str(work_dir)) == {5: 80.0, 10: 85.5, 15: 88.25}


def test_arms_are_averaged_and_a_difference_is_called_only_beyond_the_spread(tmp_path):
    a = [run(tmp_path, 'a0', {5: 90.0, 10: 95.0}), run(tmp_path, 'a1', {5: 92.0, 10: 93.0})]
    b = [run(tmp_path, 'b0', {5: 80.0, 10: 93.5}), run(tmp_path, 'b1', {5: 82.0, 10: 95.5})]
    text = vc.table(vc.gather([('A', a), ('B', b)]))
    rows = {line.split(' | ')[0].strip('| '): line for line in text.splitlines()}
    assert '91.00 ± 1.41' in rows['**A**, mean ± std']       # mean and sample std of 90, 92
    assert '94.00 ± 1.41' in rows['**A**, mean ± std']
    diff = rows['A minus B'].split(' | ')
    assert diff[1] == '+10.00 (better)'                      # far beyond 1.41 + 1.41
    assert diff[2].startswith('-0.50 (no difference)')       # inside the spread


def test_one_run_per_arm_is_not_called_and_a_run_behind_leaves_its_cell_empty(tmp_path):
    a = [run(tmp_path, 'a0', {5: 90.0, 10: 91.0, 15: 92.0}),
         run(tmp_path, 'a1', {5: 90.5, 10: 91.5, 15: 92.5}),
         run(tmp_path, 'a2', {5: 91.0, 10: 92.0})]           # still running: no epoch 15
    b = [run(tmp_path, 'b0', {5: 70.0, 10: 80.0, 15: 85.0})]
    lines = vc.table(vc.gather([('A', a), ('B', b)])).splitlines()
    a2 = next(line for line in lines if line.startswith(f'| A: {a[2]}'))
    assert a2.split(' | ')[1:] == ['91.00', '92.00', ' |']  # epoch 15 left empty
    mean = next(line for line in lines if line.startswith('| **A**'))
    assert mean.split(' | ')[3] == '92.25 ± 0.35 (n=2) |'    # epoch 15: the 2 runs there
    assert mean.split(' | ')[1] == '90.50 ± 0.50'
    diff = next(line for line in lines if line.startswith('| A minus B'))
    assert '(1 seed: not called)' in diff and 'better' not in diff


def test_only_the_epochs_asked_for_and_the_outputs_written(tmp_path):
    a = [run(tmp_path, 'a0', {5: 90.0, 10: 91.0})]
    b = [run(tmp_path, 'b0', {5: 70.0, 10: 80.0})]
    out = tmp_path / 'curves'
    vc.main(['--arm', 'A', *a, '--arm', 'B', *b, '--epochs', '10', '--out', str(out)])
    md = (tmp_path / 'curves.md').read_text()
    assert md.splitlines()[0] == '| run | 10 |' and '90.00' not in md
    assert json.loads((tmp_path / 'curves.json').read_text()) == {
        'A': {a[0]: {'5': 90.0, '10': 91.0}}, 'B': {b[0]: {'5': 70.0, '10': 80.0}}}


def test_bad_input_is_named(tmp_path):
    empty = tmp_path / 'not_a_run'
    os.makedirs(empty)
    with pytest.raises(SystemExit, match='no \\*/vis_data/scalars.json under .*not_a_run'):
        vc.read_curve(str(empty))
    a = run(tmp_path, 'a0', {5: 90.0})
    with pytest.raises(SystemExit, match='arm names repeat'):
        vc.gather([('A', [a]), ('A', [a])])
    with pytest.raises(SystemExit):
        vc.parse_args(['--arm', 'A'])                        # a name without work dirs
