"""mmmim: masked image modeling (MAE, EMAE, SBAM/AMR, GAN-MAE) on the OpenMMLab stack."""
import os as _os
from importlib import metadata as _metadata

from .version import __version__

# (distribution, minimum, first version not supported, pip requirement to install)
_REQUIREMENTS = (
    ('mmcv', '2.0.0', '2.2.0', 'mmcv==2.1.0 (built with ops; see tools/setup_env.sh)'),
    ('mmengine', '0.10.0', '1.0.0', 'mmengine==0.10.7'),
    ('mmpretrain', '1.2.0', '1.3.0', 'mmpretrain==1.2.0'),
    ('mmdet', '3.3.0', '3.4.0', 'mmdet==3.3.0'),
    ('mmsegmentation', '1.2.0', '1.3.0', 'mmsegmentation==1.2.2'),
)

# installed or not, as a user likes; but when installed, inside this range
_OPTIONAL = (
    ('transformers', '4.0.0', '5.0.0',
     'transformers==4.49.0 (or `pip uninstall transformers`; only the Hugging Face checkpoint '
     'layouts need it)',
     "mmpretrain 1.2 cannot be imported beside transformers 5.x: its BLIP module subclasses "
     "transformers' PreTrainedModel at import time and fails with 'TypeError: NoneType takes "
     "no arguments'"),
)


def _parse(version):
    parts = []
    for piece in version.split('+')[0].split('.')[:3]:
        digits = ''.join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts + [0] * (3 - len(parts)))


def check_dependencies(requirements=_REQUIREMENTS, get_version=_metadata.version,
                       optional=_OPTIONAL):
    """Raise ImportError naming every missing or out-of-range dependency and its fix.

    Reads installed versions from package metadata (no heavy imports), so it runs at
    ``import mmmim`` time for free.
    """
    problems = []
    for dist, low, high, pin in requirements:
        try:
            found = get_version(dist)
        except _metadata.PackageNotFoundError:
            problems.append(f'{dist} is not installed; install {pin}')
            continue
        if not _parse(low) <= _parse(found) < _parse(high):
            problems.append(f'{dist} {found} is installed but mmmim needs {dist}>={low},<{high}; '
                            f'install {pin}')
    for dist, low, high, pin, why in optional:
        try:
            found = get_version(dist)
        except _metadata.PackageNotFoundError:
            continue
        if not _parse(low) <= _parse(found) < _parse(high):
            problems.append(f'{dist} {found} is installed: {why}; install {pin}')
    if problems:
        raise ImportError('mmmim cannot start:\n  - ' + '\n  - '.join(problems) +
                          '\nThe simplest fix is `bash tools/setup_env.sh`, which builds the pinned, '
                          'tested environment.')


# MMMIM_SKIP_VERSION_CHECK=1 skips the check (for source checkouts without package metadata)
if _os.environ.get('MMMIM_SKIP_VERSION_CHECK', '0') != '1':
    check_dependencies()

__all__ = ['__version__', 'check_dependencies']
