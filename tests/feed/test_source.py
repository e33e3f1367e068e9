"""BinaryFILE records from plain and gzip files, truncation reported, header-only filtering."""

from __future__ import annotations

import gzip

import pytest

from agora.feed.integrity import IntegrityReport, IssueKind
from agora.feed.source import FeedFileError, RecordFilter, iter_records, open_binary
from agora.protocols import itch50


def directory(locate: int, stock: str) -> itch50.StockDirectory:
    return itch50.StockDirectory(
        locate, 0, 1, stock, "Q", "N", 100, "N", "C", "Z", "P", "N", "N", "1", "N", 0, "N"
    )


def add(locate: int, ts: int, ref: int) -> itch50.AddOrder:
    return itch50.AddOrder(locate, 0, ts, ref, "B", 100, "", 1_000_000)


MESSAGES = [directory(1, "AAA"), directory(2, "BBB"), add(1, 10, 1), add(2, 20, 2), add(1, 30, 3)]
DATA = itch50.write_file_records(MESSAGES, end_of_session=True)


def records(data: bytes, tmp_path, *, gz: bool = False, chunk: int = 1 << 20):
    path = tmp_path / ("day.gz" if gz else "day.bin")
    path.write_bytes(gzip.compress(data) if gz else data)
    report = IntegrityReport()
    with open_binary(path) as stream:
        out = list(iter_records(stream, report=report, chunk=chunk))
    return out, report


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("chunk", [1, 3, 7, 1 << 20])
def test_records_round_trip_at_any_chunk_size(tmp_path, gz, chunk):
    out, report = records(DATA, tmp_path, gz=gz, chunk=chunk)
    assert [itch50.decode(p) for _, p in out] == MESSAGES
    offsets = [o for o, _ in out]
    assert offsets[0] == 0 and offsets[1] == 2 + len(itch50.encode(MESSAGES[0]))
    assert not report


@pytest.mark.parametrize("cut", [1, 2, 5])
def test_truncated_file_keeps_complete_records_and_reports_the_tail(tmp_path, cut):
    data = itch50.write_file_records(MESSAGES)
    out, report = records(data[:-cut], tmp_path)
    assert len(out) == len(MESSAGES) - 1
    last = len(data) - 2 - len(itch50.encode(MESSAGES[-1]))
    assert report.counts == {IssueKind.TRUNCATED: 1}
    assert report.examples[0].offset == last


def test_gzip_cut_short_is_reported_not_raised(tmp_path):
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(DATA * 50)[:-40])
    report = IntegrityReport()
    with open_binary(path) as stream:
        out = list(iter_records(stream, report=report))
    assert report.counts == {IssueKind.TRUNCATED: 1}
    assert 0 < len(out) <= 5 * 50


def test_truncation_without_a_report_raises_a_clear_error(tmp_path):
    path = tmp_path / "t.bin"
    path.write_bytes(DATA[:-3])
    with open_binary(path) as stream, pytest.raises(FeedFileError, match="ends inside a record"):
        list(iter_records(stream))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FeedFileError, match="cannot open"):
        open_binary(tmp_path / "nope.bin")


def test_filter_by_ticker_learns_locates_from_the_directory(tmp_path):
    out, _ = records(DATA, tmp_path)
    kept = [itch50.decode(p) for _, p in RecordFilter(symbols=["BBB"]).filter(out)]
    assert kept == [*MESSAGES[:2], MESSAGES[3]]


def test_filter_by_locate_and_end_time(tmp_path):
    out, _ = records(DATA, tmp_path)
    kept = [itch50.decode(p) for _, p in RecordFilter(locates=[1], end_ns=30).filter(out)]
    assert kept == MESSAGES[:3]


def test_corrupt_gzip_is_reported_as_malformed(tmp_path):
    path = tmp_path / "bad.gz"
    good = gzip.compress(DATA)
    path.write_bytes(good[:12] + bytes(b ^ 0x55 for b in good[12:-8]) + good[-8:])
    report = IntegrityReport()
    with open_binary(path) as stream:
        list(iter_records(stream, report=report))
    assert set(report.counts) <= {IssueKind.MALFORMED, IssueKind.TRUNCATED} and report
