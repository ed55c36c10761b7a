# SBAM + AMR on Fashion-MNIST (comparable to mae_vit-mini-p4_4e.py): the mask ratio per
# batch is 0.75 -+ 0.1 depending on the share of salient patches (logged as mask_ratio).
_base_ = './sbam_vit-mini-p4_4e.py'
model = dict(masker=dict(ratio=dict(_delete_=True, type='AdaptiveRatio', ratio=0.75,
                                    ratio_delta=0.1, threshold=0.5, per_sample=False)))
