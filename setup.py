"""mmmim: masked image modeling pre-training (MAE, EMAE, SBAM/AMR, GAN-MAE) for OpenMMLab."""
import os.path as osp

from setuptools import find_packages, setup


def version():
    scope = {}
    with open(osp.join(osp.dirname(__file__), 'mmmim', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='mmmim',
    version=version(),
    description='Masked image modeling pre-training (MAE, EMAE, SBAM/AMR, GAN-MAE) '
                'on mmengine / mmpretrain, with mmdet and mmseg transfer',
    long_description=open(osp.join(osp.dirname(__file__), 'README.md')).read()
    if osp.exists(osp.join(osp.dirname(__file__), 'README.md')) else '',
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('configs', 'tools', 'tests', 'projects')),
    python_requires='>=3.9',
    # torch and mmcv (with compiled ops) are installed first: see tools/setup_env.sh.
    install_requires=[
        'mmengine>=0.10.0,<1.0.0',
        'mmpretrain>=1.2.0,<1.3.0',
        'mmdet>=3.3.0,<3.4.0',
        'mmsegmentation>=1.2.0,<1.3.0',
        'numpy',
    ],
    extras_require={'tests': ['pytest']},
    license='Apache License 2.0',
)
