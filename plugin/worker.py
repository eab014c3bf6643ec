"""The worker class of ``keepwell worker``: RQ's SimpleWorker, which runs each job in the worker
process itself rather than in a child forked per job (bench/fork.py measures both; README,
"Running in production", says what a crash then means).

One change to RQ: the shutdown of the pub/sub thread (the thread that listens for RQ's
stop-job and shutdown commands). RQ unsubscribes first and then stops and joins the thread; the
thread, woken by the unsubscribe reply, may loop once more before it sees the stop flag and wait
up to 60 s for a subscription that never comes, and redis-py joins it without a time limit. A
warm shutdown then took a minute, past the grace period platforms give before SIGKILL (Heroku:
30 s). Here the flag goes down first, so the unsubscribe reply ends the thread, and the join is
bounded: the thread is a daemon and never holds up the exit.
"""
from __future__ import annotations

from rq import SimpleWorker

JOIN_S = 1.0


class Worker(SimpleWorker):
    def unsubscribe(self):
        thread = self.pubsub_thread
        if thread is None:
            return
        self.log.info("Worker %s: unsubscribing from channel %s", self.name, self.pubsub_channel_name)
        try:
            thread.stop(timeout=0)  # redis-py >= 8 joins in stop(): only lower the flag here
        except TypeError:
            thread.stop()  # older redis-py: stop() only lowers the flag
        if thread.is_alive():
            self.pubsub.unsubscribe()  # the reply wakes the thread's blocking read: it closes the pubsub and ends
            thread.join(JOIN_S)
        self.pubsub_thread = None
