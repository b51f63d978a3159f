"""Micro-batching: concurrent requests share one ``pipeline.predict`` call.

A bounded queue feeds one worker thread. The worker takes the first waiting image, waits at most ``max_wait_ms``
for more (up to ``max_batch``), and runs the batch; while it runs, new requests queue up and form the next batch,
so the batch size follows the load. One thread owns the model: torch parallelises inside each call, and the
pipeline needs no locking. No fastapi here: the batcher is plain threads and futures.
"""
import logging
import queue
import threading
import time
from concurrent.futures import Future

__all__ = ['MicroBatcher', 'QueueFull', 'BatcherClosed']

logger = logging.getLogger('kpt_plugin.serving')


class QueueFull(Exception):
    """The queue holds ``max_queue`` images: the caller answers 503 instead of waiting."""


class BatcherClosed(Exception):
    """The batcher is stopping (server shutdown) or its worker died."""


class _Job:
    __slots__ = ('image', 'threshold', 'future', 'queued_at')

    def __init__(self, image, threshold):
        self.image, self.threshold, self.future = image, threshold, Future()
        self.queued_at = time.monotonic()


class MicroBatcher:
    """Queue images and run them through ``pipeline.predict`` in batches, in one worker thread.

    Args:
        pipeline: has ``predict(images, batch_size=n, det_threshold=t)`` yielding one result per image, in order.
        max_batch (int): images per ``predict`` call (1 turns micro-batching off).
        max_wait_ms (float): how long the first image of a batch waits for more (0: take only what is queued).
        max_queue (int): images waiting at most; :meth:`submit` raises :class:`QueueFull` beyond.

    Attributes:
        stats (dict): ``batches``, ``images``, ``largest_batch``, ``errors`` (counters since start).
    """

    def __init__(self, pipeline, max_batch=8, max_wait_ms=5.0, max_queue=64):
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError(f'max_batch={max_batch}, max_queue={max_queue} must be >= 1 and '
                             f'max_wait_ms={max_wait_ms} >= 0')
        self.pipeline = pipeline
        self.max_batch, self.max_wait, self.max_queue = int(max_batch), max_wait_ms / 1000.0, int(max_queue)
        self._queue = queue.Queue(maxsize=self.max_queue)
        self._stop = threading.Event()
        self._thread = None
        self.stats = dict(batches=0, images=0, largest_batch=0, errors=0)

    # ------------------------------------------------------------------ caller side (any thread)
    def start(self):
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name='kpt-serving-batcher', daemon=True)
            self._thread.start()
        return self

    @property
    def alive(self):
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    def submit(self, image, det_threshold=None):
        """Queue one BGR image; returns a :class:`concurrent.futures.Future` of its pipeline result.

        Raises:
            QueueFull: ``max_queue`` images are already waiting.
            BatcherClosed: the batcher was stopped.
        """
        if not self.alive:
            raise BatcherClosed('the inference worker is not running (the server is shutting down)')
        job = _Job(image, det_threshold)
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise QueueFull(f'{self.max_queue} images are already waiting') from None
        return job.future

    def close(self, timeout=30.0):
        """Stop the worker after its current batch; waiting jobs fail with :class:`BatcherClosed`."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._fail_waiting()

    # ------------------------------------------------------------------ worker side
    def _run(self):
        while not self._stop.is_set():
            try:
                # a timeout, so close() is noticed within 0.1 s even when idle
                first = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            batch = [first]
            deadline = time.monotonic() + self.max_wait
            while len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    batch.append(self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._process(batch)
            except BaseException:  # noqa: BLE001 - the worker must outlive any batch
                logger.exception('inference worker: unexpected failure')
            finally:
                for job in batch:  # never leave a request waiting forever
                    if not job.future.done():
                        job.future.set_exception(RuntimeError('the inference worker failed on this batch'))
        self._fail_waiting()

    def _fail_waiting(self):
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(BatcherClosed('the server is shutting down'))

    def _process(self, batch):
        # a request whose client went away was cancelled: it costs no inference
        jobs = [j for j in batch if j.future.set_running_or_notify_cancel()]
        if not jobs:
            return
        self.stats['batches'] += 1
        self.stats['images'] += len(jobs)
        self.stats['largest_batch'] = max(self.stats['largest_batch'], len(jobs))
        # predict takes one threshold per call: one call per distinct detThreshold, in arrival order
        groups = {}
        for j in jobs:
            groups.setdefault(j.threshold, []).append(j)
        for thr, group in groups.items():
            try:
                self._predict(group, thr)
            except Exception:  # noqa: BLE001 - isolate: rerun one by one so only the culprit fails
                logger.warning('inference failed on a batch of %d; running its images one by one', len(group))
                for j in group:
                    self._predict([j], thr)

    def _predict(self, group, thr):
        """Run one group; a single image's failure goes to its future, a batch's is raised."""
        try:
            results = list(self.pipeline.predict([j.image for j in group], batch_size=len(group),
                                                 det_threshold=thr))
            if len(results) != len(group):
                raise RuntimeError(f'pipeline.predict returned {len(results)} results for {len(group)} images')
        except Exception as e:
            if len(group) == 1:
                self.stats['errors'] += 1
                group[0].future.set_exception(e)
                return
            raise
        for j, r in zip(group, results):
            j.future.set_result(r)
