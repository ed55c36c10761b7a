# SBAM + AMR: the mask ratio follows the share of salient patches,
# R = r - dr + 2 * dr * mean(1[S > delta]), one ratio per batch (per_sample=True gives one
# per image, with padded visible sets). The ratio used is logged as mask_ratio.
_base_ = './mae-sbam_vit-b_800e.py'
model = dict(masker=dict(ratio=dict(_delete_=True, type='AdaptiveRatio', ratio=0.75,
                                    ratio_delta=0.1, threshold=0.5, per_sample=False)))
