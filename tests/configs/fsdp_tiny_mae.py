# tests/configs/sgd_tiny_mae.py trained with FSDP (mmmim's MIMFSDPStrategy: one FSDP unit per
# transformer block, full state dict on save) under mmengine's FlexibleRunner.
_base_ = ['./sgd_tiny_mae.py']
custom_imports = dict(imports=['mmmim', 'mmmim.engine.strategies', 'reliability_probe'],
                      allow_failed_imports=False)
strategy = dict(type='MIMFSDPStrategy')
