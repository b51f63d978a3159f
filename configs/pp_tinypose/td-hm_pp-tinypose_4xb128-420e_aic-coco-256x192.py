# PP-TinyPose 256x192 (PaddleDetection configs/keypoint/tiny_pose/tinypose_256x192.yml) for MMPose.
# Same model, loss, augmentation, evaluation and schedule shape as the 128x96 config; ppdet changes the input
# size, the target sigma, the batch size and the learning rate.
_base_ = ['./td-hm_pp-tinypose_4xb512-420e_aic-coco-128x96.py']

input_size = (192, 256)  # (w, h)
heatmap_size = (48, 64)
sigma = 2
base_lr = 0.002
batch_size = 128  # per GPU, 4 GPUs in ppdet

optim_wrapper = dict(optimizer=dict(lr=base_lr))
auto_scale_lr = dict(base_batch_size=4 * batch_size)
codec = dict(type='PPTinyPoseHeatmap', input_size=input_size, heatmap_size=heatmap_size, sigma=sigma)
model = dict(head=dict(decoder=codec))

# the base pipelines with this config's input size and codec (see the 128x96 config for the ppdet mapping)
train_pipeline = [
    dict(t, **{k: v for k, v in dict(input_size=input_size, encoder=codec).items() if k in t})
    for t in _base_.train_pipeline
]
val_pipeline = [dict(t, **({'input_size': input_size} if 'input_size' in t else {})) for t in _base_.val_pipeline]

train_dataloader = dict(batch_size=batch_size, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader
