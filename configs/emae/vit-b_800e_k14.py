# EMAE K ablation: K = 14 parallel views (each masks 1 - 1/14); compare with
# configs/mae/vit-b_800e_ratio13-14.py. ViT-B/16 has 196 patches, divisible by 14.
_base_ = './vit-b_800e.py'
model = dict(masker=dict(num_parts=14))
