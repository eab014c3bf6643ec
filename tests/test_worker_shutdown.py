"""`keepwell worker` shuts down gracefully on SIGTERM (what a platform sends on deploy/scale):
the job in progress finishes, then the process exits 0."""
import os
import signal
import subprocess
import sys
import time
import uuid

from redis import Redis
from rq import Queue, Worker
from rq.job import JobStatus


def test_sigterm_lets_the_running_job_finish_then_exits(redis_server, tmp_path):
    queue_name = f"kwshutdown{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "REDIS_URL": redis_server, "DATABASE_URL": f"sqlite:///{tmp_path}/kw.db",
           "KEEPWELL_QUEUE": queue_name}
    redis = Redis.from_url(redis_server)
    queue = Queue(queue_name, connection=redis)
    proc = subprocess.Popen([sys.executable, "-m", "plugin.cli", "worker"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not Worker.all(queue=queue):
            assert time.monotonic() < deadline and proc.poll() is None, proc.stdout.read().decode()
            time.sleep(0.1)
        job = queue.enqueue("time.sleep", 2)
        while job.get_status(refresh=True) != JobStatus.STARTED:
            assert time.monotonic() < deadline, job.get_status()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert job.get_status(refresh=True) == JobStatus.FINISHED  # not killed mid-job
        assert Worker.all(queue=queue) == []  # deregistered
    finally:
        if proc.poll() is None:
            proc.kill()
        for key in redis.scan_iter(f"*{queue_name}*"):
            redis.delete(key)
