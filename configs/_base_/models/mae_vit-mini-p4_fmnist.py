# A CPU-sized MAE for Fashion-MNIST: ViT "mini" (128-d, 6 layers, 4 heads) on 32x32 grey
# images with 4x4 patches (64 patches), decoder 2 x 96.
model = dict(
    type='MAE',
    data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=[55.8], std=[82.9], to_rgb=False),
    backbone=dict(
        type='MaskedViT',
        arch=dict(embed_dims=128, num_layers=6, num_heads=4, feedforward_channels=512),
        img_size=32, patch_size=4, in_channels=1),
    neck=dict(type='MAEDecoder', decoder_embed_dims=96, decoder_depth=2, decoder_num_heads=4),
    head=dict(type='ReconstructionHead', norm_pix=True),
    masker=dict(type='RandomMasker', ratio=0.75),
)
