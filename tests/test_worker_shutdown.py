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
