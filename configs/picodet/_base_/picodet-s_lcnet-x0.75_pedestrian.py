# PP-PicoDet-S, LCNet x0.75, pedestrian (1 class): PP-TinyPose's person detector, ported from PaddleDetection
# configs/picodet/application/pedestrian_detection/picodet_s_{192,320}_lcnet_pedestrian.yml. Inference only.
# The network is the same at every input size (anchors follow the feature maps); the size configs beside this
# folder set the test pipeline. Preprocessing, decoding and NMS are ppdet's.
_base_ = ['mmdet::_base_/default_runtime.py']
default_scope = 'mmdet'
custom_imports = dict(imports=['kpt_plugin'], allow_failed_imports=False)

model = dict(
    type='PicoDet',
    # bicubic resize in the pipeline; BGR -> RGB, /255 and ImageNet mean/std with ppdet's arithmetic here
    data_preprocessor=dict(type='PPDetDataPreprocessor', bgr_to_rgb=True),
    backbone=dict(type='LCNet', scale=0.75, feature_maps=(3, 4, 5)),
    neck=dict(type='LCPAN', in_channels=(96, 192, 384), out_channels=96, use_depthwise=True, num_features=4),
    bbox_head=dict(
        type='PicoHeadV2',
        conv_feat=dict(feat_in=96, feat_out=96, num_convs=2, share_cls_reg=True, use_se=True),
        num_classes=1,
        fpn_stride=(8, 16, 32, 64),
        prior_prob=0.01,
        use_align_head=True,
        reg_max=7,
        feat_in_chan=96,
        cell_offset=0.5),
    test_cfg=dict(
        # ppdet MultiClassNMS of the config (= the graph exported with export.nms=True)
        nms=dict(score_threshold=0.025, nms_top_k=1000, keep_top_k=100, nms_threshold=0.6, normalized=True),
        # ppdet leaves boxes unclipped after rescaling; PaddleX's pipeline clips them (set False for ppdet's)
        clip_to_image=True))

# ---------------------------------------------------------------- evaluation stubs (COCO val2017, person only)
data_root = 'data/coco/'
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CocoDataset',
        data_root=data_root,
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/'),
        metainfo=dict(classes=('person', ), palette=[(220, 20, 60)]),
        test_mode=True,
        pipeline=[]))  # set by the size config
test_evaluator = dict(type='CocoMetric', ann_file=data_root + 'annotations/instances_val2017.json', metric='bbox')
test_cfg = dict(type='TestLoop')
