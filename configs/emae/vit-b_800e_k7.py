# EMAE K ablation: K = 7 parallel views (each masks 1 - 1/7); compare with
# configs/mae/vit-b_800e_ratio6-7.py. ViT-B/16 has 196 patches, divisible by 7.
_base_ = './vit-b_800e.py'
model = dict(masker=dict(num_parts=7))
