# PP-TinyPose 128x96 (PaddleDetection configs/keypoint/tiny_pose/tinypose_128x96.yml) for MMPose.
# Model, codec, loss, flip test, train augmentation, evaluation and schedule are ppdet's.
_base_ = ['mmpose::_base_/default_runtime.py']
custom_imports = dict(imports=['kpt_plugin'], allow_failed_imports=False)

input_size = (96, 128)  # (w, h)
heatmap_size = (24, 32)
sigma = 1
base_lr = 0.008
batch_size = 512  # per GPU, 4 GPUs in ppdet
num_gpus = 4
# The dataset root, taken from the environment when set (mmengine's `{{$VAR:default}}`): mmengine's
# `--cfg-options data_root=DIR` changes this variable only, not the dataset dicts built from it, so with MMPose's
# tools/train.py, tools/test.py or `mim train` use `KPT_PLUGIN_DATA_ROOT=DIR python tools/train.py CONFIG`.
# Our tools/train.py takes `--cfg-options data_root=DIR` as well (it substitutes the variable before evaluation).
data_root = '{{$KPT_PLUGIN_DATA_ROOT:data/}}'

# runtime: ppdet trains 420 epochs, lr x0.1 at 380 and 410, 500-iter linear warm-up from 0.001
train_cfg = dict(max_epochs=420, val_interval=10)
optim_wrapper = dict(optimizer=dict(type='Adam', lr=base_lr))
param_scheduler = [
    dict(type='LinearLR', begin=0, end=500, start_factor=0.001, by_epoch=False),
    dict(type='MultiStepLR', begin=0, end=420, milestones=[380, 410], gamma=0.1, by_epoch=True),
]
auto_scale_lr = dict(base_batch_size=num_gpus * batch_size)
default_hooks = dict(checkpoint=dict(save_best='coco/AP', rule='greater'))

codec = dict(type='PPTinyPoseHeatmap', input_size=input_size, heatmap_size=heatmap_size, sigma=sigma)

model = dict(
    type='TopdownPoseEstimator',
    data_preprocessor=dict(
        type='PoseDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(type='PPLiteHRNet', arch='wider_naive'),
    head=dict(
        type='HeatmapHead',
        in_channels=40,
        out_channels=17,
        deconv_out_channels=None,
        conv_out_channels=None,
        # ppdet KeyPointMSELoss: 0.5 * mean over joints of the weighted per-joint MSE
        loss=dict(type='KeypointMSELoss', use_target_weight=True, loss_weight=0.5),
        decoder=codec),
    # ppdet TopDownHRNet: flip, swap pairs, shift the flipped map right by one column, average
    test_cfg=dict(flip_test=True, flip_mode='heatmap', shift_heatmap=True))

# AI Challenger keypoints mapped to COCO's 17 (ppdet trains on COCO + AIC in COCO layout)
aic_to_coco = [(0, 6), (1, 8), (2, 10), (3, 5), (4, 7), (5, 9), (6, 12), (7, 14), (8, 16), (9, 11), (10, 13),
               (11, 15)]

# ppdet's RandomFlipHalfBodyTransform / TopDownRandomShiftBboxCenter-free affine augmentation /
# AugmentationbyInformantionDropping / TopDownAffine(use_udp) / ToHeatmapsTopDown_DARK; MMPose's RandomFlip,
# RandomHalfBody and TopdownAffine are exactly ppdet's with these arguments (docs/training.md has the mapping).
train_pipeline = [
    dict(type='LoadImage', color_type='color_ignore_orientation'),  # ppdet ignores EXIF orientation
    dict(type='PPGetBBoxCenterScale', input_size=input_size),  # ppdet's box: aspect 0.75, x1.25
    dict(type='RandomFlip', direction='horizontal', prob=0.5),
    # ppdet: > 8 labelled joints, p 0.3, upper body if randn < 0.5 (p 0.6915) and > 2 upper joints
    dict(type='RandomHalfBody', min_total_keypoints=9, min_upper_keypoints=3, min_lower_keypoints=3,
         padding=1.5, prob=0.3, upper_prioritized_prob=0.6914624612740131),
    dict(type='PPRandomBBoxTransform', scale_factor=0.25, rotate_factor=30, rotate_prob=0.6),
    dict(type='PPAIDCutout', input_size=input_size, prob=0.5, offset_factor=0.05, num_patch=1),
    dict(type='TopdownAffine', input_size=input_size, use_udp=True),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs'),
]
# Evaluation = PaddleDetection's (docs/evaluation.md): its GT boxes, box -> center/scale and UDP crop
# (no aspect re-fix), then its rescoring, OKS-NMS and bbox-free results json in PPCocoMetric.
val_pipeline = [
    dict(type='LoadImage', color_type='color_ignore_orientation'),  # ppdet: IMREAD_IGNORE_ORIENTATION
    dict(type='PPGetBBoxCenterScale', input_size=input_size),
    dict(type='PPTopdownAffine', input_size=input_size),
    dict(type='PackPoseInputs'),
]

# ppdet's GT box clipping and instance filter, for training as for evaluation
dataset_type = 'PPCocoDataset'
data_mode = 'topdown'
dataset_coco = dict(
    type=dataset_type, data_root=data_root, data_mode=data_mode,
    ann_file='coco/annotations/person_keypoints_train2017.json', data_prefix=dict(img='coco/train2017/'),
    pipeline=[])
dataset_aic = dict(
    type=dataset_type, metainfo=dict(from_file='configs/_base_/datasets/aic.py'), data_root=data_root,
    data_mode=data_mode,
    ann_file='aic/annotations/aic_train.json',
    data_prefix=dict(img='aic/ai_challenger_keypoint_train_20170902/keypoint_train_images_20170902/'),
    pipeline=[dict(type='KeypointConverter', num_keypoints=17, mapping=aic_to_coco)])

train_dataloader = dict(
    batch_size=batch_size,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='CombinedDataset',
        metainfo=dict(from_file='configs/_base_/datasets/coco.py'),
        datasets=[dataset_coco, dataset_aic],
        pipeline=train_pipeline,
        test_mode=False))
val_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(
        type=dataset_type, data_root=data_root, data_mode=data_mode,
        ann_file='coco/annotations/person_keypoints_val2017.json', data_prefix=dict(img='coco/val2017/'),
        bbox_file=None,  # detector boxes: a COCO detection results json
        filter_cfg=dict(bbox_score_thr=0.0),  # ppdet's image_thre for detector boxes
        test_mode=True, pipeline=val_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='PPCocoMetric', ann_file=None)  # None: the dataset's ann_file
test_evaluator = val_evaluator
