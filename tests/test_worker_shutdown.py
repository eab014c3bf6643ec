"""`keepwell worker` shuts down gracefully on SIGTERM (what a platform sends on deploy/scale):
the job in progress finishes, then the process exits 0."""
import os
import signal
import sys
import uuid

from redis import Redis
from rq import Queue, Worker
from rq.job import JobStatus

import children
from children import WAIT_S, wait_for


def test_sigterm_lets_the_running_job_finish_then_exits(redis_server, tmp_path):
    queue_name = f"kwshutdown{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "REDIS_URL": redis_server, "DATABASE_URL": f"sqlite:///{tmp_path}/kw.db",
           "KEEPWELL_QUEUE": queue_name}
    redis = Redis.from_url(redis_server)
    queue = Queue(queue_name, connection=redis)
    log = tmp_path / "worker.log"
    proc = children.start([sys.executable, "-m", "plugin.cli", "worker"], env=env, log=log)

    def alive():
        assert proc.poll() is None, log.read_text()

    try:
        wait_for(lambda: Worker.all(queue=queue), "the worker to register", check=alive)
        job = queue.enqueue("time.sleep", 2)
        wait_for(lambda: job.get_status(refresh=True) == JobStatus.STARTED, "the job to start", check=alive)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=WAIT_S) == 0, log.read_text()
        assert job.get_status(refresh=True) == JobStatus.FINISHED  # not killed mid-job
        assert Worker.all(queue=queue) == []  # deregistered
    finally:
        children.stop(proc)
        for key in redis.scan_iter(f"*{queue_name}*"):
            redis.delete(key)


def test_the_pubsub_thread_never_holds_up_a_warm_shutdown(redis_server):
    """RQ's command listener waits up to 60 s for a subscription once it has seen its channel's
    unsubscribe reply; RQ's own shutdown then joined it for that long (past a platform's grace
    period). Here that state is reached on purpose: the shutdown still takes about a second."""
    import time

    from plugin.worker import Worker as KeepwellWorker

    redis = Redis.from_url(redis_server)
    worker = KeepwellWorker([Queue(f"kwpubsub{uuid.uuid4().hex[:8]}", connection=redis)], connection=redis)
    worker.subscribe()
    thread = worker.pubsub_thread
    wait_for(lambda: worker.pubsub.subscribed, "the listener to subscribe")
    worker.pubsub.unsubscribe()  # the listener reads the reply and goes back to wait for a subscription
    wait_for(lambda: not worker.pubsub.subscribed, "the unsubscribe reply")
    time.sleep(0.2)

    started = time.monotonic()
    worker.unsubscribe()
    assert time.monotonic() - started < 5
    assert thread.daemon and worker.pubsub_thread is None
