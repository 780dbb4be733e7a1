"""cluster/wire.py: arrays over 1 MiB split into chunks that rejoin as the same array, as a
view where the chunks arrive back to back and as a copy where a pickle copied them."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from rlfarm.agents.fragment import Fragment
from rlfarm.cluster import wire


def owns_its_memory(array: np.ndarray) -> bool:
    """The array, or the array it is a view of, holds its own copy of the data."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return bool(array.flags.owndata)


@pytest.mark.parametrize("shape,dtype", [((65, 1024, 4), np.float32), ((3, 700_001), np.bool_),
                                         ((2, 2**17), np.int64)])
def test_large_arrays_travel_in_chunks_and_rejoin(shape, dtype):
    rng = np.random.default_rng(0)
    array = (rng.random(shape) * 100).astype(dtype)
    sent = wire.split_array(array)
    assert [chunk.nbytes for chunk in sent.chunks][:-1] == [wire.CHUNK_BYTES] * (len(sent.chunks) - 1)
    assert sum(chunk.nbytes for chunk in sent.chunks) == array.nbytes > wire.CHUNK_BYTES

    buffers: list = []  # out of band, as Ray's store keeps them: the chunks stay back to back
    data = pickle.dumps(sent, protocol=5, buffer_callback=buffers.append)
    viewed = pickle.loads(data, buffers=buffers)
    copied = pickle.loads(pickle.dumps(sent, protocol=4))  # in band: every chunk a separate copy
    for received in (viewed, copied):
        assert received.shape == array.shape and received.dtype == array.dtype
        np.testing.assert_array_equal(received, array)
    assert not owns_its_memory(viewed) and not viewed.flags.writeable
    assert owns_its_memory(copied)


def test_small_arrays_and_fragment_fields_pass_as_they_are():
    small = np.arange(10, dtype=np.float32)
    assert wire.split_array(small) is small
    fragment = Fragment.allocate(64, 1024, (4,), runner_id=3, env_ms=1.5)
    fragment.obs[:] = np.random.default_rng(1).random(fragment.obs.shape)
    fields = wire._fragment_fields(fragment)
    assert fields["rewards"] is fragment.rewards and fields["runner_id"] == 3
    rebuilt = wire._rebuild_fragment(pickle.loads(pickle.dumps(fields)))
    np.testing.assert_array_equal(rebuilt.obs, fragment.obs)
    assert rebuilt.env_ms == 1.5 and rebuilt.nbytes == fragment.nbytes
