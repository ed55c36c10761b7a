# EMAE (K = 4 parallel views) with the salience ranking as the ordering cut into views.
# split='contiguous': view 0 sees the least salient quarter (it is exactly the SBAM mask
# at ratio 1 - 1/K) and view K-1 the most salient one; split='interleaved' deals the
# ranking out so that every view sees a mix of salience levels.
_base_ = '../emae/vit-b_800e.py'
model = dict(masker=dict(split='contiguous', order=dict(type='SalienceMasker', noise=0.5)))
