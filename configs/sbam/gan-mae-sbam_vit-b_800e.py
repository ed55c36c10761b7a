# GAN-MAE ViT-B/16, 800 epochs, with SBAM masking for the generator (everything else as
# configs/gan_mae/vit-b_800e.py):
#   tools/dist_train.sh configs/sbam/gan-mae-sbam_vit-b_800e.py 8
_base_ = '../gan_mae/vit-b_800e.py'
model = dict(masker=dict(_delete_=True, type='SalienceMasker', ratio=0.75, noise=0.5))
