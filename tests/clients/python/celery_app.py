"""The Celery app used by celery_test.py (the worker subprocess imports it too).

Configured from the environment so the worker (`celery -A celery_app worker`) and the
client agree:  RMQ_CELERY_BROKER = AMQP URL,  RMQ_CELERY_QUEUE = the unique queue.
"""
import os

from celery import Celery

BROKER = os.environ.get("RMQ_CELERY_BROKER", "amqp://guest:guest@127.0.0.1:5672/%2F")
QUEUE = os.environ.get("RMQ_CELERY_QUEUE", "rmq-celery-test")

app = Celery("rmq_celery_test", broker=BROKER, backend="rpc://")
app.conf.update(
    task_default_queue=QUEUE,          # exchange and routing key default to the same name
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=60,
    broker_connection_retry_on_startup=True,
    broker_connection_max_retries=3,
    worker_prefetch_multiplier=1,
    task_acks_late=False,
    worker_hijack_root_logger=False,
)


@app.task(name="rmq_test.add")
def add(x, y):
    return x + y


@app.task(name="rmq_test.flaky", bind=True, max_retries=3)
def flaky(self, value):
    """Fails on the first attempt and retries after 1 s; succeeds on the retry."""
    if self.request.retries == 0:
        raise self.retry(countdown=1, exc=RuntimeError("first attempt fails"))
    return {"value": value, "retries": self.request.retries}


@app.task(name="rmq_test.boom")
def boom(msg):
    raise ValueError(msg)


@app.task(name="rmq_test.echo_headers", bind=True)
def echo_delivery(self):
    info = self.request.delivery_info or {}
    return {"routing_key": info.get("routing_key"), "exchange": info.get("exchange"),
            "redelivered": info.get("redelivered")}
