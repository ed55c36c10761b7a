"""tools/mmcv_cxx.sh, the compiler wrapper the environment build hands to mmcv: it
precompiles the shared header once, gcc really uses it, and the objects it builds
compute the same thing as a plain compile."""
import os
import os.path as osp
import shutil
import subprocess

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
WRAPPER = osp.join(REPO, 'tools', 'mmcv_cxx.sh')
pytestmark = pytest.mark.skipif(shutil.which('c++') is None or shutil.which('flock') is None,
                                reason='needs a C++ compiler and flock')

HEADER = '''#pragma once
#include <vector>
#include <numeric>
#define HELPER_SEEN 1
inline int helper_sum(const std::vector<int>& v) { return std::accumulate(v.begin(), v.end(), 0); }
'''
SOURCE = '''#include "helper.hpp"
#ifndef HELPER_SEEN
#error helper.hpp was not included
#endif
int op_{n}() {{ return helper_sum({{1, 2, {n}}}); }}
'''
MAIN = '''#include <cstdio>
int op_1(); int op_2();
int main() { std::printf("%d %d\\n", op_1(), op_2()); return 0; }
'''


def compile_all(tmp, env, flags=('-O2', '-DTORCH_EXTENSION_NAME=_ext')):
    inc = tmp / 'common'
    inc.mkdir(exist_ok=True)
    (inc / 'helper.hpp').write_text(HEADER)
    objs = []
    for n in (1, 2):
        src = tmp / f'op{n}.cpp'
        src.write_text(SOURCE.format(n=n))
        obj = tmp / f'op{n}.o'
        # the argument shape of torch's ninja rule: deps file, cflags (ending in -c), -c SRC,
        # -o OBJ, post flags
        cmd = ['bash', WRAPPER, '-MMD', '-MF', f'{obj}.d', *flags, f'-I{inc}', '-c', '-c', str(src),
               '-o', str(obj), '-std=c++17', '-Winvalid-pch', '-H']
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        objs.append((obj, proc.stderr))
    (tmp / 'main.cpp').write_text(MAIN)
    exe = tmp / 'prog'
    subprocess.run(['c++', str(tmp / 'main.cpp'), *[str(o) for o, _ in objs], '-o', str(exe)],
                   check=True)
    return subprocess.run([str(exe)], capture_output=True, text=True).stdout, objs


def test_precompiled_header_is_built_once_and_used(tmp_path):
    env = {**os.environ, 'MMMIM_PCH_HEADER': str(tmp_path / 'common' / 'helper.hpp')}
    out, objs = compile_all(tmp_path, env)
    assert out.split() == ['4', '5']
    assert (tmp_path / 'common' / 'helper.hpp.gch').is_file()
    for _, stderr in objs:
        # gcc's -H marks a precompiled header it used with '!' and one it rejected with 'x'
        assert '! ' in stderr and 'helper.hpp.gch' in stderr, stderr
        assert 'x ' not in stderr.split('helper.hpp.gch')[0].splitlines()[-1]
    assert not any('invalid' in s for _, s in objs)


def test_without_a_header_it_is_a_plain_compile(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != 'MMMIM_PCH_HEADER'}
    out, objs = compile_all(tmp_path, env)
    assert out.split() == ['4', '5']
    assert not (tmp_path / 'common' / 'helper.hpp.gch').exists()
    assert all('.gch' not in s for _, s in objs)


def test_a_header_that_cannot_be_precompiled_falls_back(tmp_path):
    env = {**os.environ, 'MMMIM_PCH_HEADER': str(tmp_path / 'common' / 'missing.hpp')}
    out, _ = compile_all(tmp_path, env)
    assert out.split() == ['4', '5']
    assert (tmp_path / 'common' / 'missing.hpp.gch.failed').exists()


def test_no_debug_information_by_default(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != 'MMMIM_PCH_HEADER'}
    compile_all(tmp_path, env, flags=('-O2', '-g'))
    sections = subprocess.run(['objdump', '-h', str(tmp_path / 'op1.o')], capture_output=True,
                              text=True).stdout
    assert '.debug_info' not in sections
    compile_all(tmp_path, {**env, 'MMMIM_CXX_DEBUG': '1'}, flags=('-O2', '-g'))
    sections = subprocess.run(['objdump', '-h', str(tmp_path / 'op1.o')], capture_output=True,
                              text=True).stdout
    assert '.debug_info' in sections


def test_a_wrapper_pointing_at_itself_stops_instead_of_recursing(tmp_path):
    env = {**os.environ, 'MMMIM_REAL_CXX': WRAPPER}
    proc = subprocess.run(['bash', WRAPPER, '--version'], env=env, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 2 and 'points back at this wrapper' in proc.stderr


def test_a_new_pin_rebuilds_the_environment_but_not_mmcv(tmp_path):
    """The mmcv wheel's cache key depends only on what goes into the mmcv build."""
    for rel in ('tools/setup_env.sh', 'tools/mmcv_cxx.sh', 'requirements/pinned.txt'):
        os.makedirs(tmp_path / osp.dirname(rel), exist_ok=True)
        shutil.copy(osp.join(REPO, rel), tmp_path / rel)

    def keys():
        out = subprocess.run(['bash', str(tmp_path / 'tools' / 'setup_env.sh')],
                             env=dict(os.environ, MMMIM_PRINT_KEYS='1'), check=True,
                             capture_output=True, text=True).stdout.split()
        return out[1], out[3]
    env0, mmcv0 = keys()
    pins = tmp_path / 'requirements' / 'pinned.txt'
    pins.write_text(pins.read_text() + 'somepackage==1.0\n')
    env1, mmcv1 = keys()
    assert env1 != env0 and mmcv1 == mmcv0
    pins.write_text(pins.read_text().replace('mmcv==2.1.0', 'mmcv==2.1.1'))
    assert keys()[1] != mmcv0
