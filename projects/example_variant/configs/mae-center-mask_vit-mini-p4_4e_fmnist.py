# The same variant on Fashion-MNIST (CPU):
#   python tools/train.py projects/example_variant/configs/mae-center-mask_vit-mini-p4_4e_fmnist.py
_base_ = '../../../configs/fashion_mnist/mae_vit-mini-p4_4e.py'
custom_imports = dict(imports=['mmmim', 'projects.example_variant.center_masker'],
                      allow_failed_imports=False)
model = dict(masker=dict(_delete_=True, type='CenterBiasedMasker', ratio=0.75, bias=0.5))
