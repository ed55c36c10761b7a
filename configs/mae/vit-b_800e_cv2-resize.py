# MAE ViT-B/16, 800 epochs, with the fast loader's crop resized by OpenCV
# (LoadRandomResizedCrop(backend='cv2'), mmpretrain RandomResizedCrop's default resize)
# instead of torch's antialiased resize. Faster on the CPU (about 2x mmpretrain's MAE
# pipeline on photo-like JPEGs against 1.7-1.8x), but not antialiased: a downscaled crop
# aliases (on average 2 grey levels from Pillow's bicubic, the MAE recipe's resize, against
# 0.05). Whether that changes what MAE learns is not tested; docs/speed.md, "The resize is
# the gain".
_base_ = ['./vit-b_800e.py']
__load, *__rest = _base_.train_dataloader.dataset.pipeline
train_dataloader = dict(dataset=dict(pipeline=[dict(__load, backend='cv2'), *__rest]))
