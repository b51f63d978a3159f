"""Progress bar and time-per-instance line for ``tools/test.py``."""
import sys
import time
from typing import Optional

from mmengine.dist import get_dist_info
from mmengine.hooks import Hook
from mmengine.utils import ProgressBar
from mmpose.registry import HOOKS


@HOOKS.register_module()
class PPTestProgressHook(Hook):
    """Shows a progress bar over the test set and prints the time per image and per instance.

    The time runs from the first batch request to the last batch's predictions (data loading and
    the model, not the COCO evaluation); it is reported per instance (person box) and per image.
    After the test, ``num_instances``, ``num_images``, ``seconds_per_instance`` and
    ``seconds_per_image`` hold the figures.
    """

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self.num_instances = 0
        self.num_images = 0
        self.seconds = 0.
        self.seconds_per_instance: Optional[float] = None
        self.seconds_per_image: Optional[float] = None
        self._bar = None
        self._img_ids = set()

    def before_test_epoch(self, runner) -> None:
        self.num_instances, self.num_images, self.seconds = 0, 0, 0.
        self.seconds_per_instance = self.seconds_per_image = None
        self._img_ids = set()
        total = len(runner.test_dataloader.dataset)
        self._bar = ProgressBar(total, file=sys.stdout) if get_dist_info()[0] == 0 else None
        self._t0 = time.perf_counter()

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        samples = outputs if outputs is not None else data_batch['data_samples']
        n = len(samples)
        self.num_instances += n
        self._img_ids.update(s.metainfo.get('img_id', s.metainfo.get('img_path')) for s in samples)
        self.num_images = len(self._img_ids)
        self.seconds = time.perf_counter() - self._t0
        if self._bar is not None:
            self._bar.update(n)
            if self._bar.completed >= self._bar.task_num:
                self._bar.file.write('\n')

    def after_test_epoch(self, runner, metrics=None) -> None:
        if self.num_instances:
            self.seconds_per_instance = self.seconds / self.num_instances
            self.seconds_per_image = self.seconds / max(self.num_images, 1)
            runner.logger.info(
                f'Inference: {self.num_instances} instances on {self.num_images} images in {self.seconds:.2f} s: '
                f'{1000 * self.seconds_per_image:.2f} ms per image, {1000 * self.seconds_per_instance:.2f} ms '
                f'per instance (batch {runner.test_dataloader.batch_size}, data loading included)')
