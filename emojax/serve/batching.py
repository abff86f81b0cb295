"""Micro-batching: concurrent requests share the model's compiled batch shapes.

Requests put their items on one bounded queue; a single worker thread (JAX runs there, off the event loop) takes
the first waiting request, gathers more until it holds `max_batch` items or `max_wait_s` has passed, runs them as
one call and hands each request its own results. A request that would push the queue past `max_queue` items is
refused at once (`QueueFull`: the API answers 503 with Retry-After) instead of waiting behind a pile.
"""

import asyncio
import concurrent.futures
import dataclasses
import queue
import threading
import time
from typing import Callable


class QueueFull(Exception):
  """The queue holds `max_queue` items already: try again shortly."""


@dataclasses.dataclass
class _Job:
  items: list
  future: concurrent.futures.Future


class MicroBatcher:
  """`await submit(items)` -> `run(items)`'s results for those items, run together with other requests'."""

  def __init__(self, run: Callable[[list], list], max_batch: int = 32, max_wait_s: float = 0.005, max_queue: int = 64):
    self.run = run
    self.max_batch, self.max_wait_s, self.max_queue = max_batch, max_wait_s, max_queue
    self._jobs = queue.Queue()
    self._waiting = 0  # items queued or running
    self._lock = threading.Lock()
    self.batches = self.items = self.largest = 0
    self._thread = threading.Thread(target=self._serve, name="emojax-batcher", daemon=True)
    self._thread.start()

  def stats(self) -> dict:
    return {
      "queued_items": self._waiting,
      "max_queue": self.max_queue,
      "batches": self.batches,
      "items": self.items,
      "largest_batch": self.largest,
      "mean_batch": round(self.items / self.batches, 3) if self.batches else 0.0,
    }

  async def submit(self, items: list) -> list:
    with self._lock:
      if self._waiting + len(items) > self.max_queue:
        raise QueueFull(f"{self._waiting} items are waiting (at most {self.max_queue}); retry in a second.")
      self._waiting += len(items)
    job = _Job(items, concurrent.futures.Future())
    self._jobs.put(job)
    return await asyncio.wrap_future(job.future)

  def close(self) -> None:
    self._jobs.put(None)

  # -- the worker ------------------------------------------------------------------------------
  def _serve(self) -> None:
    while True:
      first = self._jobs.get()
      if first is None:
        return
      jobs = self._gather(first)
      self._run(jobs)

  def _gather(self, first: _Job) -> list[_Job]:
    jobs, count = [first], len(first.items)
    deadline = time.monotonic() + self.max_wait_s
    while count < self.max_batch:
      try:
        job = self._jobs.get(timeout=max(0.0, deadline - time.monotonic()))
      except queue.Empty:
        break
      if job is None:
        self._jobs.put(None)  # close after this batch
        break
      jobs.append(job)
      count += len(job.items)
    return jobs

  def _run(self, jobs: list[_Job]) -> None:
    items = [item for job in jobs for item in job.items]
    try:
      results = self.run(items)
    except Exception as error:  # noqa: BLE001 - handed to every request of the batch, the worker lives on
      results = None
      for job in jobs:
        job.future.set_exception(error)
    finally:
      with self._lock:
        self._waiting -= len(items)
      self.batches += 1
      self.items += len(items)
      self.largest = max(self.largest, len(items))
    if results is not None:
      start = 0
      for job in jobs:
        job.future.set_result(results[start : start + len(job.items)])
        start += len(job.items)
