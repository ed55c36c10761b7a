# MAE ViT-B/16, 800 epochs, with SBAM salience-based masking instead of random masking:
#   tools/dist_train.sh configs/sbam/mae-sbam_vit-b_800e.py 8
# The patches other patches attend to most (softmax(X X^T) over patch + position
# embeddings) are masked, with U[0, noise) noise on the salience so masks still vary.
_base_ = '../mae/vit-b_800e.py'
model = dict(masker=dict(_delete_=True, type='SalienceMasker', ratio=0.75, noise=0.5))
