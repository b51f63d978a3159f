# PP-PicoDet-S LCNet x0.75 pedestrian at 192x192 (ppdet picodet_s_192_lcnet_pedestrian.yml); model in _base_.
_base_ = ['./_base_/picodet-s_lcnet-x0.75_pedestrian.py']

input_size = 192
# ppdet Resize(target_size=[192, 192], keep_ratio=False, interp=2): mmcv's 'bicubic' is cv2.INTER_CUBIC
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=False, interpolation='bicubic'),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
