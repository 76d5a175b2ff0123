"""Runner.__call__ splits a batch larger than the runner's max_batch (a TensorRT profile's max)."""

import numpy as np

from lfcc_pipeline.runtimes.base import Runner


class Doubling(Runner):
    runtime, precision, device = "test", "fp32", "cpu"

    def __init__(self, max_batch):
        self.max_batch = max_batch
        self.seen = []

    def prepare(self, batch):
        return batch

    def run(self, native_input):
        assert self.max_batch is None or len(native_input) <= self.max_batch
        self.seen.append(len(native_input))
        return native_input.reshape(len(native_input), -1)[:, :2] * 2

    def to_numpy(self, native_output):
        return native_output


def test_large_batches_run_in_chunks_of_max_batch_and_keep_their_order():
    x = np.arange(10 * 3 * 2 * 2, dtype=np.float32).reshape(10, 3, 2, 2)
    chunked, whole = Doubling(4), Doubling(None)
    assert np.array_equal(chunked(x), whole(x))
    assert chunked.seen == [4, 4, 2] and whole.seen == [10]
