"""Prediction and reference files that are wrong: each error names the file, where in it, what was
wrong and what was expected. Nothing is guessed (no encoding is guessed, no NaN becomes a label)."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pytest

from microemo.evaluation.io import read_samples


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


# -- empty files ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("p.csv", "", "the file is empty; expected a header line such as 'name,openset'"),
        ("p.csv", "\n  \n", "the file is empty"),
        ("p.json", "", "the file is empty"),
        ("p.jsonl", "\n", "the file is empty"),
        ("p.csv", "name,openset\n", r"no samples \(a header only\)"),
        ("p.json", "[]", "no samples"),
    ],
    ids=["csv-0-bytes", "csv-blank-lines", "json-0-bytes", "jsonl-blank", "csv-header-only", "json-empty-list"],
)
def test_an_empty_file_says_it_is_empty(tmp_path, name, content, message):
    path = write(tmp_path, name, content)
    with pytest.raises(ValueError, match=message) as raised:
        read_samples(path)
    assert str(path) in str(raised.value) and "No columns to parse" not in str(raised.value)


# -- text encodings ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("encoding", "byte"),
    [("latin-1", "0xe9"), ("gbk", "0xcb")],
)
def test_a_file_that_is_not_utf8_is_named_with_its_line_and_byte(tmp_path, encoding, byte):
    text = 'name,english\ns1,"He is calm."\ns2,"Jérôme est triste."\n' if encoding == "latin-1" else \
        'name,english\ns1,"He is calm."\ns2,"他很难过。"\n'
    path = write(tmp_path, "p.csv", text.encode(encoding))
    with pytest.raises(ValueError, match=rf"p\.csv, line 3: not UTF-8 text \(byte {byte} .*expected UTF-8") as raised:
        read_samples(path)
    assert str(path) in str(raised.value)


def test_a_jsonl_file_that_is_not_utf8_is_named(tmp_path):
    path = write(tmp_path, "p.jsonl", '{"name": "s1", "english": "Jérôme"}\n'.encode("latin-1"))
    with pytest.raises(ValueError, match=r"p\.jsonl, line 1: not UTF-8 text"):
        read_samples(path)


def test_utf16_with_a_byte_order_mark_is_read(tmp_path):
    # A spreadsheet's "Unicode text" export: the byte-order mark says the encoding, so nothing is guessed.
    path = write(tmp_path, "r.csv", codecs.BOM_UTF16_LE + 'name,openset\ns1,"[\'déçu\']"\n'.encode("utf-16-le"))
    assert read_samples(path).values == {"s1": "['déçu']"}


def test_a_binary_file_is_named_as_binary(tmp_path):
    path = write(tmp_path, "p.csv", b"PK\x03\x04\x14\x00\x00\x00\x08\x00")  # an .xlsx renamed .csv
    with pytest.raises(ValueError, match="binary file, not text"):
        read_samples(path)


# -- CSV structure ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "content",
    [
        'name,openset\ns1,"[\'happy\']\ns2,"[\'sad\']"\ns3,"[\'calm\']"\n',  # closed two lines later
        'name,openset\ns1,"[\'happy\']\ns2,[sad]\ns3,[calm]\n',  # never closed
    ],
    ids=["closed-later", "never-closed"],
)
def test_an_unbalanced_quote_blames_the_line_where_it_opened(tmp_path, content):
    path = write(tmp_path, "p.csv", content)
    with pytest.raises(ValueError, match=r"p\.csv, line 2: not valid CSV .*opened with a double quote on line 2"):
        read_samples(path)


def test_a_row_with_too_many_values_names_its_line(tmp_path):
    path = write(tmp_path, "p.csv", "name,english\ns1,He is calm\ns2,She is sad, and tired\n")
    with pytest.raises(ValueError, match=r"line 3: 3 values; expected 2.*double quotes"):
        read_samples(path)


def test_a_column_named_twice_is_refused(tmp_path):
    path = write(tmp_path, "p.csv", "name,openset,openset\ns1,[a],[b]\n")
    with pytest.raises(ValueError, match=r"names the column\(s\) \['openset'\] twice"):
        read_samples(path)


def test_a_semicolon_separated_file_says_so(tmp_path):
    path = write(tmp_path, "p.csv", "name;openset\ns1;[happy]\n")
    with pytest.raises(ValueError, match="separated by ';'; expected commas"):
        read_samples(path)


def test_blank_lines_and_spaces_in_the_header_are_tolerated(tmp_path):
    path = write(tmp_path, "p.csv", "name, openset\n\ns1,\"['happy']\"\n\n")
    assert read_samples(path).values == {"s1": "['happy']"}


# -- names, values, non-finite numbers --------------------------------------------------------------------------------
def test_a_name_given_twice_names_both_lines(tmp_path):
    path = write(tmp_path, "p.csv", "name,openset\ns1,[a]\ns2,[b]\ns1,[c]\n")
    with pytest.raises(ValueError, match=r"'s1' appears twice \(line 2 and line 4\)"):
        read_samples(path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("p.csv", "name,openset\ns1,nan\n", r"p\.csv, line 2: the 'openset' value of sample 's1' is 'nan'"),
        ("p.csv", "name,english\ns1,NaN\n", "is 'NaN', which is how a missing number is written"),
        ("p.json", '[{"name": "s1", "openset": NaN}]', "NaN is not a JSON value"),
        ("p.jsonl", '{"name": "s1", "openset": Infinity}\n', r"line 1: Infinity is not a JSON value"),
    ],
    ids=["csv-nan", "csv-NaN-description", "json-NaN", "jsonl-Infinity"],
)
def test_non_finite_numbers_are_refused_not_read_as_labels(tmp_path, name, content, message):
    path = write(tmp_path, name, content)
    with pytest.raises(ValueError, match=message):
        read_samples(path)


def test_a_name_that_is_not_a_string_is_refused(tmp_path):
    path = write(tmp_path, "p.json", json.dumps([{"name": ["s1"], "openset": ["happy"]}]))
    with pytest.raises(ValueError, match=r"row 1 has the name \['s1'\] \(item 1\)"):
        read_samples(path)


def test_a_json_file_that_does_not_parse_names_line_and_column(tmp_path):
    path = write(tmp_path, "p.json", '[{"name": "s1",\n "openset": [happy]}]')
    with pytest.raises(ValueError, match=r"p\.json: not JSON \(Expecting value at line 2, column 14\)"):
        read_samples(path)


# -- paths that are not files --------------------------------------------------------------------------------------
def test_a_folder_is_named_as_a_folder(tmp_path):
    folder = tmp_path / "predictions.csv"
    folder.mkdir()
    with pytest.raises(ValueError, match="predictions.csv: is a folder; expected a .csv, .jsonl or .json file"):
        read_samples(folder)
