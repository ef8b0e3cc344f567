"""Rating logs read the way their files write time: numeric timestamps in seconds,
milliseconds, microseconds or nanoseconds (told by their magnitude unless given), or ISO
8601 date-times, all into unix seconds (simulators.datasets)."""

import pytest

from simulators.datasets import IMPLICIT_VALUE, BadRow, load_csv, time_unit_of

SECONDS = [1_425_470_405, 1_425_470_400, 1_425_556_800]  # 2015-03-04 12:00:05, 12:00:00, 2015-03-05 12:00 UTC


def write(path, stamps):
    path.write_text("user_id,item_id,rating,timestamp\n"
                    + "".join(f"u{n},i{n},4,{t}\n" for n, t in enumerate(stamps)))
    return path


def test_the_unit_of_numeric_timestamps_is_told_by_their_magnitude():
    assert time_unit_of(SECONDS) == "s"
    assert time_unit_of([t * 1000 for t in SECONDS]) == "ms"
    assert time_unit_of([t * 10**6 for t in SECONDS]) == "us"
    assert time_unit_of([t * 10**9 for t in SECONDS]) == "ns"
    assert time_unit_of([0, 60, 3600]) == "s"  # relative times
    assert time_unit_of([]) == "s"


@pytest.mark.parametrize("stamps", [
    [t * 1000 for t in SECONDS],
    [t * 10**6 + 250 for t in SECONDS],
    ["2015-03-04T12:00:05Z", "2015-03-04 12:00:00", "2015-03-05T13:00:00+01:00"],
])
def test_a_log_in_another_unit_or_in_dates_reads_as_the_same_seconds(tmp_path, stamps):
    expected = [r.timestamp for r in load_csv(write(tmp_path / "s.csv", SECONDS))]
    got = [r.timestamp for r in load_csv(write(tmp_path / "x.csv", stamps), time_unit="auto")]
    assert got == pytest.approx(expected, abs=1e-3)
    assert [r.item_id for r in load_csv(tmp_path / "x.csv", time_unit="auto")] == ["i1", "i0", "i2"]  # time order


def test_a_given_unit_overrides_the_magnitude_and_a_bad_cell_names_line_and_field(tmp_path):
    log = write(tmp_path / "ms.csv", [t * 1000 for t in SECONDS])
    assert load_csv(log, time_unit="s")[0].timestamp == SECONDS[1] * 1000
    with pytest.raises(ValueError, match="time unit"):
        load_csv(log, time_unit="hours")
    bad = write(tmp_path / "bad.csv", ["2015-03-04", "last tuesday"])
    with pytest.raises(BadRow, match=r"bad.csv:3: timestamp: 'last tuesday' is neither a number"):
        load_csv(bad, time_unit="auto")


def test_an_excel_export_with_a_byte_order_mark_and_crlf_lines_reads_its_header(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbfuser_id,item_id,rating,timestamp\r\nu,i,4,1425470400\r\n")
    (row,) = load_csv(path, time_unit="auto")
    assert (row.user_id, row.item_id, row.value, row.timestamp) == ("u", "i", 4.0, 1425470400.0)


def test_an_implicit_log_without_a_rating_column_reads_every_row_as_a_positive_value(tmp_path):
    path = tmp_path / "views.csv"
    path.write_text("visitor,product,when\nv1,p1,1425470400\nv2,p1,1425470460\n")
    rows = load_csv(path, ("visitor", "product", None, "when"))
    assert [(r.user_id, r.value) for r in rows] == [("v1", IMPLICIT_VALUE), ("v2", IMPLICIT_VALUE)]


def test_an_event_column_gives_each_row_its_type_and_a_value_only_where_the_cell_has_one(tmp_path):
    path = tmp_path / "shop.csv"
    path.write_text("ts,visitor,event,item,stars\n1425470400,v1,view,p1,\n1425470460,v1,rating,p1,4\n"
                    "1425470520,v1,transaction,p1,\n")
    rows = load_csv(path, ("visitor", "item", "stars", "ts"), event_column="event")
    assert [(r.event, r.value) for r in rows] == [("view", None), ("rating", 4.0), ("transaction", None)]
    path.write_text("ts,visitor,event,item\n1425470400,v1, ,p1\n")
    with pytest.raises(BadRow, match="shop.csv:2: event: empty"):
        load_csv(path, ("visitor", "item", None, "ts"), event_column="event")
