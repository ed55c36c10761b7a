# MAE with a ViT-B/16 encoder and the paper's 8 x 512 decoder.
model = dict(
    type='MAE',
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(type='MaskedViT', arch='base', img_size=224, patch_size=16),
    neck=dict(type='MAEDecoder', decoder_embed_dims=512, decoder_depth=8,
              decoder_num_heads=16, mlp_ratio=4.),
    head=dict(type='ReconstructionHead', norm_pix=True),
    masker=dict(type='RandomMasker', ratio=0.75),
)
