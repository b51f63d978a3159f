"""Tensor slots of PP-PicoDet-S LCNet x0.75 pedestrian (ppdet ``PicoDet``: LCNet + LCPAN + PicoHeadV2, 1 class).

Both input sizes (192, 320) share every tensor. One line per conv **in execution order** (ppdet's forward = the
op order of an exported program): conv prefix, BatchNorm prefix (``-``: none, the conv has a bias), weight shape,
then Paddle's creation numbers ``conv2d_K`` / ``batch_norm2d_K`` and the creation numbers of the nearest upstream
convs. Creation and execution order diverge here: LCNet creates each SE between its block's dw and pw convs; LCPAN
creates ``first_top_conv`` / ``second_top_conv`` (34-37) before its blocks but runs them last; PicoHeadV2 creates
the four towers with their SE (58-81), two GFLHead convs it then drops (82, 83: never saved), and only then per level
``head_cls``, ``head_reg`` and ``cls_align`` (84-99); BatchNorms are numbered on their own (0-81), the towers' before
every ``cls_align``. The DFL projection ``0..reg_max`` is the one buffer. Static data:
``tests/test_weight_convert/test_picodet_table.py`` checks it against the built mmdet model and Paddle's programs.
"""

DESCRIPTION = 'PP-PicoDet-S LCNet pedestrian (PicoDet: LCNet x0.75 + LCPAN + PicoHeadV2)'

TABLE = """
backbone.conv1.conv backbone.conv1.bn 16x3x3x3 0 0 -
backbone.blocks2.0.dw_conv.conv backbone.blocks2.0.dw_conv.bn 16x1x3x3 1 1 0
backbone.blocks2.0.pw_conv.conv backbone.blocks2.0.pw_conv.bn 24x16x1x1 2 2 1
backbone.blocks3.0.dw_conv.conv backbone.blocks3.0.dw_conv.bn 24x1x3x3 3 3 2
backbone.blocks3.0.pw_conv.conv backbone.blocks3.0.pw_conv.bn 48x24x1x1 4 4 3
backbone.blocks3.1.dw_conv.conv backbone.blocks3.1.dw_conv.bn 48x1x3x3 5 5 4
backbone.blocks3.1.pw_conv.conv backbone.blocks3.1.pw_conv.bn 48x48x1x1 6 6 5
backbone.blocks4.0.dw_conv.conv backbone.blocks4.0.dw_conv.bn 48x1x3x3 7 7 6
backbone.blocks4.0.pw_conv.conv backbone.blocks4.0.pw_conv.bn 96x48x1x1 8 8 7
backbone.blocks4.1.dw_conv.conv backbone.blocks4.1.dw_conv.bn 96x1x3x3 9 9 8
backbone.blocks4.1.pw_conv.conv backbone.blocks4.1.pw_conv.bn 96x96x1x1 10 10 9
backbone.blocks5.0.dw_conv.conv backbone.blocks5.0.dw_conv.bn 96x1x3x3 11 11 10
backbone.blocks5.0.pw_conv.conv backbone.blocks5.0.pw_conv.bn 192x96x1x1 12 12 11
backbone.blocks5.1.dw_conv.conv backbone.blocks5.1.dw_conv.bn 192x1x5x5 13 13 12
backbone.blocks5.1.pw_conv.conv backbone.blocks5.1.pw_conv.bn 192x192x1x1 14 14 13
backbone.blocks5.2.dw_conv.conv backbone.blocks5.2.dw_conv.bn 192x1x5x5 15 15 14
backbone.blocks5.2.pw_conv.conv backbone.blocks5.2.pw_conv.bn 192x192x1x1 16 16 15
backbone.blocks5.3.dw_conv.conv backbone.blocks5.3.dw_conv.bn 192x1x5x5 17 17 16
backbone.blocks5.3.pw_conv.conv backbone.blocks5.3.pw_conv.bn 192x192x1x1 18 18 17
backbone.blocks5.4.dw_conv.conv backbone.blocks5.4.dw_conv.bn 192x1x5x5 19 19 18
backbone.blocks5.4.pw_conv.conv backbone.blocks5.4.pw_conv.bn 192x192x1x1 20 20 19
backbone.blocks5.5.dw_conv.conv backbone.blocks5.5.dw_conv.bn 192x1x5x5 21 21 20
backbone.blocks5.5.pw_conv.conv backbone.blocks5.5.pw_conv.bn 192x192x1x1 22 22 21
backbone.blocks6.0.dw_conv.conv backbone.blocks6.0.dw_conv.bn 192x1x5x5 23 23 22
backbone.blocks6.0.se.conv1 - 48x192x1x1 24 - 23
backbone.blocks6.0.se.conv2 - 192x48x1x1 25 - 24
backbone.blocks6.0.pw_conv.conv backbone.blocks6.0.pw_conv.bn 384x192x1x1 26 24 23,25
backbone.blocks6.1.dw_conv.conv backbone.blocks6.1.dw_conv.bn 384x1x5x5 27 25 26
backbone.blocks6.1.se.conv1 - 96x384x1x1 28 - 27
backbone.blocks6.1.se.conv2 - 384x96x1x1 29 - 28
backbone.blocks6.1.pw_conv.conv backbone.blocks6.1.pw_conv.bn 384x384x1x1 30 26 27,29
neck.conv_t.convs.0.conv neck.conv_t.convs.0.bn 96x96x1x1 31 27 10
neck.conv_t.convs.1.conv neck.conv_t.convs.1.bn 96x192x1x1 32 28 22
neck.conv_t.convs.2.conv neck.conv_t.convs.2.bn 96x384x1x1 33 29 30
neck.top_down_blocks.0.0.dw_conv.conv neck.top_down_blocks.0.0.dw_conv.bn 192x1x5x5 38 34 32,33
neck.top_down_blocks.0.0.pw_conv.conv neck.top_down_blocks.0.0.pw_conv.bn 192x192x1x1 39 35 38
neck.top_down_blocks.0.1.dw_conv.conv neck.top_down_blocks.0.1.dw_conv.bn 192x1x5x5 40 36 39
neck.top_down_blocks.0.1.pw_conv.conv neck.top_down_blocks.0.1.pw_conv.bn 96x192x1x1 41 37 40
neck.top_down_blocks.1.0.dw_conv.conv neck.top_down_blocks.1.0.dw_conv.bn 192x1x5x5 42 38 31,41
neck.top_down_blocks.1.0.pw_conv.conv neck.top_down_blocks.1.0.pw_conv.bn 192x192x1x1 43 39 42
neck.top_down_blocks.1.1.dw_conv.conv neck.top_down_blocks.1.1.dw_conv.bn 192x1x5x5 44 40 43
neck.top_down_blocks.1.1.pw_conv.conv neck.top_down_blocks.1.1.pw_conv.bn 96x192x1x1 45 41 44
neck.downsamples.0.dwconv neck.downsamples.0.bn1 96x1x5x5 46 42 45
neck.downsamples.0.pwconv neck.downsamples.0.bn2 96x96x1x1 47 43 46
neck.bottom_up_blocks.0.0.dw_conv.conv neck.bottom_up_blocks.0.0.dw_conv.bn 192x1x5x5 48 44 41,47
neck.bottom_up_blocks.0.0.pw_conv.conv neck.bottom_up_blocks.0.0.pw_conv.bn 192x192x1x1 49 45 48
neck.bottom_up_blocks.0.1.dw_conv.conv neck.bottom_up_blocks.0.1.dw_conv.bn 192x1x5x5 50 46 49
neck.bottom_up_blocks.0.1.pw_conv.conv neck.bottom_up_blocks.0.1.pw_conv.bn 96x192x1x1 51 47 50
neck.downsamples.1.dwconv neck.downsamples.1.bn1 96x1x5x5 52 48 51
neck.downsamples.1.pwconv neck.downsamples.1.bn2 96x96x1x1 53 49 52
neck.bottom_up_blocks.1.0.dw_conv.conv neck.bottom_up_blocks.1.0.dw_conv.bn 192x1x5x5 54 50 33,53
neck.bottom_up_blocks.1.0.pw_conv.conv neck.bottom_up_blocks.1.0.pw_conv.bn 192x192x1x1 55 51 54
neck.bottom_up_blocks.1.1.dw_conv.conv neck.bottom_up_blocks.1.1.dw_conv.bn 192x1x5x5 56 52 55
neck.bottom_up_blocks.1.1.pw_conv.conv neck.bottom_up_blocks.1.1.pw_conv.bn 96x192x1x1 57 53 56
neck.first_top_conv.dwconv neck.first_top_conv.bn1 96x1x5x5 34 30 33
neck.first_top_conv.pwconv neck.first_top_conv.bn2 96x96x1x1 35 31 34
neck.second_top_conv.dwconv neck.second_top_conv.bn1 96x1x5x5 36 32 57
neck.second_top_conv.pwconv neck.second_top_conv.bn2 96x96x1x1 37 33 36
head.conv_feat.cls_conv_dw0.0.conv head.conv_feat.cls_conv_dw0.0.norm 96x1x5x5 58 54 45
head.conv_feat.cls_conv_pw0.0.conv head.conv_feat.cls_conv_pw0.0.norm 96x96x1x1 59 55 58
head.conv_feat.cls_conv_dw0.1.conv head.conv_feat.cls_conv_dw0.1.norm 96x1x5x5 60 56 59
head.conv_feat.cls_conv_pw0.1.conv head.conv_feat.cls_conv_pw0.1.norm 96x96x1x1 61 57 60
head.conv_feat.se.0.fc - 96x96x1x1 62 - 61
head.conv_feat.se.0.conv.conv head.conv_feat.se.0.conv.norm 96x96x1x1 63 58 61,62
head.head_cls_list.0 - 1x96x1x1 84 - 63
head.head_reg_list.0 - 32x96x1x1 85 - 63
head.cls_align.0.dwconv head.cls_align.0.bn1 1x96x5x5 86 74 61
head.cls_align.0.pwconv head.cls_align.0.bn2 1x1x1x1 87 75 86
head.conv_feat.cls_conv_dw1.0.conv head.conv_feat.cls_conv_dw1.0.norm 96x1x5x5 64 59 51
head.conv_feat.cls_conv_pw1.0.conv head.conv_feat.cls_conv_pw1.0.norm 96x96x1x1 65 60 64
head.conv_feat.cls_conv_dw1.1.conv head.conv_feat.cls_conv_dw1.1.norm 96x1x5x5 66 61 65
head.conv_feat.cls_conv_pw1.1.conv head.conv_feat.cls_conv_pw1.1.norm 96x96x1x1 67 62 66
head.conv_feat.se.1.fc - 96x96x1x1 68 - 67
head.conv_feat.se.1.conv.conv head.conv_feat.se.1.conv.norm 96x96x1x1 69 63 67,68
head.head_cls_list.1 - 1x96x1x1 88 - 69
head.head_reg_list.1 - 32x96x1x1 89 - 69
head.cls_align.1.dwconv head.cls_align.1.bn1 1x96x5x5 90 76 67
head.cls_align.1.pwconv head.cls_align.1.bn2 1x1x1x1 91 77 90
head.conv_feat.cls_conv_dw2.0.conv head.conv_feat.cls_conv_dw2.0.norm 96x1x5x5 70 64 57
head.conv_feat.cls_conv_pw2.0.conv head.conv_feat.cls_conv_pw2.0.norm 96x96x1x1 71 65 70
head.conv_feat.cls_conv_dw2.1.conv head.conv_feat.cls_conv_dw2.1.norm 96x1x5x5 72 66 71
head.conv_feat.cls_conv_pw2.1.conv head.conv_feat.cls_conv_pw2.1.norm 96x96x1x1 73 67 72
head.conv_feat.se.2.fc - 96x96x1x1 74 - 73
head.conv_feat.se.2.conv.conv head.conv_feat.se.2.conv.norm 96x96x1x1 75 68 73,74
head.head_cls_list.2 - 1x96x1x1 92 - 75
head.head_reg_list.2 - 32x96x1x1 93 - 75
head.cls_align.2.dwconv head.cls_align.2.bn1 1x96x5x5 94 78 73
head.cls_align.2.pwconv head.cls_align.2.bn2 1x1x1x1 95 79 94
head.conv_feat.cls_conv_dw3.0.conv head.conv_feat.cls_conv_dw3.0.norm 96x1x5x5 76 69 35,37
head.conv_feat.cls_conv_pw3.0.conv head.conv_feat.cls_conv_pw3.0.norm 96x96x1x1 77 70 76
head.conv_feat.cls_conv_dw3.1.conv head.conv_feat.cls_conv_dw3.1.norm 96x1x5x5 78 71 77
head.conv_feat.cls_conv_pw3.1.conv head.conv_feat.cls_conv_pw3.1.norm 96x96x1x1 79 72 78
head.conv_feat.se.3.fc - 96x96x1x1 80 - 79
head.conv_feat.se.3.conv.conv head.conv_feat.se.3.conv.norm 96x96x1x1 81 73 79,80
head.head_cls_list.3 - 1x96x1x1 96 - 81
head.head_reg_list.3 - 32x96x1x1 97 - 81
head.cls_align.3.dwconv head.cls_align.3.bn1 1x96x5x5 98 80 79
head.cls_align.3.pwconv head.cls_align.3.bn2 1x1x1x1 99 81 98
"""

BUFFERS = """
head.distribution_project.project 0 1 2 3 4 5 6 7
"""
