"""``SessionLog`` against a plain list of Sequenced Data packets: the same packets from any
start, in memory or spilled to its file, with any ``keep``; the file appears only on the first
spill and is gone when the log is closed."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agora.protocols import soupbintcp as soup
from agora.protocols.soupbintcp_log import STRIDE, SessionLog

_MESSAGES = st.lists(st.binary(max_size=60), max_size=40)
_TAKES = st.lists(st.tuples(st.integers(-2, 400), st.integers(1, 300)), max_size=6)


def framed(messages):
    return soup.sequenced_packets(messages)


def take_all(log: SessionLog, start: int, limit: int) -> bytes:
    """Everything ``take`` gives from ``start`` for ``limit`` messages, asking again as told."""
    out, got = [], 0
    while got < limit:
        data, count = log.take(start + got, limit - got)
        if count == 0:
            break
        out.append(data)
        got += count
    return b"".join(out)


@settings(max_examples=200, deadline=None)
@given(keep=st.integers(1, 70), batches=st.lists(st.tuples(_MESSAGES, _TAKES), max_size=12))
def test_takes_match_a_list_of_packets(tmp_path_factory, keep, batches):
    reference: list[bytes] = []
    log = SessionLog(tmp_path_factory.mktemp("log"), keep=keep)
    try:
        for messages, takes in batches:
            log.extend(framed(messages))
            reference.extend(framed(messages))
            assert len(log) == len(reference)
            assert log.in_memory <= 2 * keep
            for start, limit in takes:
                data, count = log.take(start, limit)
                lo = max(start, 0)
                expected = reference[lo : lo + limit] if start >= 0 else []
                assert 0 <= count <= len(expected)
                assert data == b"".join(expected[:count])
                assert (count == 0) == (not expected)
                if start >= 0:
                    assert take_all(log, start, limit) == b"".join(expected)
    finally:
        log.close()


def test_the_file_holds_the_spilled_packets_and_goes_with_close(tmp_path):
    log = SessionLog(tmp_path, keep=2)
    log.extend(framed([b"a", b"b", b"c"]))
    assert list(tmp_path.iterdir()) == []  # unnamed from the start
    assert log._fd < 0  # three messages: below 2 * keep, nothing spilled yet
    log.extend(framed([b"d"]))
    fd = log._fd
    assert log.in_memory == 2 and os.pread(fd, 100, 0) == b"".join(framed([b"a", b"b"]))
    log.close()
    with pytest.raises(OSError):
        os.fstat(fd)
    with pytest.raises(ValueError, match="closed"):
        log.extend(framed([b"e"]))


def test_a_read_from_the_file_walks_from_the_mark_before_its_start(tmp_path):
    messages = [bytes([k % 251]) * (k % 7) for k in range(5 * STRIDE + 3)]
    log = SessionLog(tmp_path, keep=1)
    log.extend(framed(messages))
    assert len(log._marks) == 6 and log.in_memory == 1
    for start in (0, STRIDE - 1, STRIDE, 3 * STRIDE + 5, len(messages) - 2):
        assert take_all(log, start, 10) == b"".join(framed(messages[start : start + 10]))
    log.close()


def test_reads_from_the_file_stop_near_128_kib_and_packets_may_be_the_largest(tmp_path):
    big = b"x" * (soup.MAX_PACKET_LENGTH - 1)
    log = SessionLog(tmp_path, keep=1)
    log.extend(framed([big, b"small", big, big, b"last"]))
    data, count = log.take(0, 10)
    assert count == 2 and data == b"".join(framed([big, b"small"]))  # the next big one: next read
    assert take_all(log, 0, 10) == b"".join(framed([big, b"small", big, big, b"last"]))
    log.close()


def test_keep_must_be_positive():
    with pytest.raises(ValueError, match="keep"):
        SessionLog(keep=0)


def test_a_file_cut_short_under_the_log_is_an_error_not_a_short_resend(tmp_path):
    log = SessionLog(tmp_path, keep=1)
    log.extend(framed([b"a" * 10, b"b" * 10, b"c" * 10]))
    assert log.in_memory == 1
    os.ftruncate(log._fd, 5)  # the disk lost what the log wrote (damage, not a crash)
    with pytest.raises(OSError, match="truncated at byte"):
        log.take(0, 2)
    log.close()
