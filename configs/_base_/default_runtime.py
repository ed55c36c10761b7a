# Runtime shared by every mmmim config.
default_scope = 'mmmim'
# lets mmpretrain's / mmdet's / mmseg's own tools run our configs too
custom_imports = dict(imports=['mmmim'], allow_failed_imports=False)

default_hooks = dict(
    runtime_info=dict(type='RuntimeInfoHook'),
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # skip steps with a NaN/Inf loss or gradient; stop after 5 in a row
    nan_guard=dict(type='mmmim.NaNGuardHook', max_consecutive=5),
    # --resume continues masks (RNG state) and the position inside an epoch
    resume_state=dict(type='mmmim.ResumeStateHook'),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),  # tools/ switch to gloo when there is no GPU
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)

log_processor = dict(window_size=10)
log_level = 'INFO'
load_from = None
resume = False

# every rank draws different masks; the whole run is reproducible for a seed
randomness = dict(seed=0, diff_rank_seed=True)
