"""One background thread that works through batch sizes (exports of a graph backend, tunings of backend auto), each
started by the rent-or-buy rule."""
import logging
import threading

__all__ = ['BackgroundQueue']

logger = logging.getLogger('kpt_plugin')


class BackgroundQueue:
    """``work(key)`` for each key asked for, once, in order, in one non-daemon thread (a process waits for the work
    it started before it exits, so the next one finds the cache warm). A failure is logged, drops the keys still
    waiting, and is raised by the next :meth:`raise_error` / :meth:`wait`, in the caller's thread.

    :meth:`rent` starts a key's work by the rent-or-buy rule: the work (an export, a tuning, loading a cached graph)
    makes a slow path (the eager torch net) fast, so it starts once the callers have spent ``after_s`` seconds on
    the slow path for that key, about what the work costs. Whatever the number of calls still to come, that never
    costs more than about twice the better of "work at once" and "never", and a short script (a few images) is not
    slowed down by seconds of exports that it would never use. :meth:`wait` starts what is deferred at once.

    Args:
        work: ``key -> None``.
        name (str): the thread's name (the test suite joins threads by name).
        what (str): log text for a failure, with one ``%d`` for the key.
    """

    def __init__(self, work, name, what):
        self.work, self.name, self.what = work, name, what
        self._lock = threading.Lock()
        self._todo = []
        self._current = None
        self._spent = {}  # key -> seconds on the slow path so far (keys not queued yet: deferred)
        self._running = False  # a loop thread takes keys (set and cleared under the lock)
        self.thread = None
        self.error = None

    def _pending(self, key):
        return key in self._todo or self._current == key

    def pending(self, key):
        """Whether ``key`` waits or is being worked on."""
        with self._lock:
            return self._pending(key)

    def add(self, keys):
        """Queue the ``keys`` not already pending; start the thread if none runs. Returns the keys queued."""
        with self._lock:
            new = [k for k in keys if not self._pending(k)]
            self._todo.extend(new)
            # not thread.is_alive(): a loop that has seen an empty queue and is returning would never take ``new``
            if new and not self._running:
                self._running = True
                self.thread = threading.Thread(target=self._loop, name=self.name, daemon=False)
                self.thread.start()
        return new

    def rent(self, key, seconds, after_s):
        """Note ``seconds`` more on the slow path for ``key``; queue its work once they sum to ``after_s``.

        Returns:
            bool: whether this call queued the work (False: not yet, or queued before).
        """
        with self._lock:
            if self._pending(key):
                return False
            spent = self._spent[key] = self._spent.get(key, 0.) + max(0., seconds)
        if spent < after_s:
            return False
        with self._lock:
            self._spent.pop(key, None)
        return bool(self.add([key]))

    def deferred(self):
        """The keys with rent noted whose work has not been queued yet."""
        with self._lock:
            return list(self._spent)

    def _loop(self):
        while True:
            with self._lock:
                if not self._todo:
                    self._current, self._running = None, False
                    return
                self._current = key = self._todo.pop(0)
            try:
                self.work(key)
            except Exception as e:  # noqa: BLE001 - re-raised by the next call, in the caller's thread
                logger.warning('%s failed: %s', self.what % key, e)
                with self._lock:
                    self.error, self._current, self._running = e, None, False
                    self._todo.clear()
                return

    def raise_error(self):
        """Raise (once) the error of a failed piece of work, if any."""
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def wait(self):
        """Start the deferred work, then block until all work asked for so far is done; re-raises its error."""
        with self._lock:
            deferred, self._spent = list(self._spent), {}
        self.add(deferred)
        thread = self.thread
        if thread is not None:
            thread.join()
        self.raise_error()
