# MAE ViT-B/16 with the centre-biased masker, everything else from configs/mae/vit-b_800e.py.
#   tools/dist_train.sh projects/example_variant/configs/mae-center-mask_vit-b_800e.py 8
_base_ = '../../../configs/mae/vit-b_800e.py'
custom_imports = dict(imports=['mmmim', 'projects.example_variant.center_masker'],
                      allow_failed_imports=False)
model = dict(masker=dict(_delete_=True, type='CenterBiasedMasker', ratio=0.75, bias=0.5))
