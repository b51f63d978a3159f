# Fine-tune PP-TinyPose 128x96 from the official weights on your own COCO-format keypoint dataset.
# Schedule as PaddleX's PP-TinyPose_128x96 fine-tune (50 epochs, batch 16, Adam lr 1e-3, 100-iter warm-up);
# model, codec and augmentation as PaddleDetection's tinypose_128x96.yml. Walkthrough: docs/training.md.
#   kpt-plugin check-dataset data/my_keypoints            # validate (and --split 80 20) first
#   python tools/train.py configs/pp_tinypose/td-hm_pp-tinypose_1xb16-50e_custom-128x96.py \
#       --cfg-options data_root=data/my_keypoints/ load_from=checkpoints/pp_tinypose_128x96.pth
# MMPose's own tools/train.py (and mim train) take the dataset root from the environment instead, because mmengine's
# --cfg-options data_root=... does not reach the dataset dicts built from it:
#   KPT_PLUGIN_DATA_ROOT=data/my_keypoints/ python $MMPOSE/tools/train.py CONFIG --cfg-options load_from=...
_base_ = ['./td-hm_pp-tinypose_4xb512-420e_aic-coco-128x96.py']

# ---------------------------------------------------------------- your dataset
# PaddleX layout: DATA/images/*.jpg + DATA/annotations/person_keypoints_{train,val}2017.json
data_root = '{{$KPT_PLUGIN_DATA_ROOT:data/my_keypoints/}}'
train_ann_file = 'annotations/person_keypoints_train2017.json'
val_ann_file = 'annotations/person_keypoints_val2017.json'
train_img_prefix = 'images/'
val_img_prefix = 'images/'
# Keypoint names, flip pairs, skeleton, OKS sigmas: MMPose dataset-info file. COCO-17 here; for another
# keypoint set point this at your own file - the head's channel count follows it (tools/train.py).
metainfo_file = 'configs/_base_/datasets/coco.py'
# The official weights converted with `kpt-plugin convert` (see docs/training.md). A head with another
# number of keypoints is re-initialised (its size does not match); the backbone always loads.
load_from = 'checkpoints/pp_tinypose_128x96.pth'
# BatchNorm statistics stay frozen (eval mode; the affine parameters still train). The official weights
# released as OpenVINO IR / ncnn / Paddle inference have BN folded into the convolutions: BN in train mode
# would renormalise every layer and destroy them (measured on coco mini: AP 0.67 -> 0.00 in 24 iterations;
# frozen: 0.67 -> 0.8). ppdet trains BN (freeze_norm: false); set False when starting from weights with
# real BN statistics and large batches.
model = dict(backbone=dict(norm_eval=True))

# ---------------------------------------------------------------- schedule
batch_size = 16
base_lr = 0.001
max_epochs = 50
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
optim_wrapper = dict(optimizer=dict(type='Adam', lr=base_lr))
param_scheduler = [dict(type='LinearLR', begin=0, end=100, start_factor=0.001, by_epoch=False)]
auto_scale_lr = dict(base_batch_size=1 * batch_size)
default_hooks = dict(checkpoint=dict(interval=5, max_keep_ckpts=2, save_best='coco/AP', rule='greater'),
                     logger=dict(interval=10))

# ---------------------------------------------------------------- data
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        _delete_=True,
        type='PPCocoDataset',  # ppdet's GT box clipping and instance filter
        data_root=data_root,
        data_mode='topdown',
        metainfo=dict(from_file=metainfo_file),
        ann_file=train_ann_file,
        data_prefix=dict(img=train_img_prefix),
        pipeline=_base_.train_pipeline))
val_dataloader = dict(
    batch_size=32,
    num_workers=2,
    dataset=dict(
        _delete_=True,
        type='PPCocoDataset',  # ppdet's GT box clipping and instance filter
        data_root=data_root,
        data_mode='topdown',
        metainfo=dict(from_file=metainfo_file),
        ann_file=val_ann_file,
        data_prefix=dict(img=val_img_prefix),
        test_mode=True,
        pipeline=_base_.val_pipeline))
test_dataloader = val_dataloader
# ann_file=None: the metric reads the val dataset's ann_file
val_evaluator = dict(type='PPCocoMetric', ann_file=None)
test_evaluator = val_evaluator
