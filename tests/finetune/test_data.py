"""Reading and sampling training data (finetune/data.py): what real files hold, seeded samples."""

from __future__ import annotations

import json

from finetune.data import load_records, sample_records


def test_json_lines_split_at_newlines_only(tmp_path, data_file):
    """A JSON string may hold U+0085 or U+2028 raw (the Twitter financial news data does): they are
    text, not line ends."""
    path = tmp_path / "odd.jsonl"
    rows = [{"text": "Medicines Company\x85 #Stock"}, {"text": "line\u2028separator"}, {"text": "plain"}]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\r\n", encoding="utf-8")
    assert [r["text"] for r in load_records(path)] == [r["text"] for r in rows]
    tweets = load_records(data_file("sentiment", "twitter_financial_news", "train.jsonl"))
    assert len(tweets) == 9543 and any("\x85" in r["text"] for r in tweets)


def test_csv_fields_keep_their_line_breaks(tmp_path):
    path = tmp_path / "quoted.csv"
    path.write_text('text,label\n"first line\nsecond line",positive\nplain,neutral\n', encoding="utf-8")
    assert [r["text"] for r in load_records(path)] == ["first line\nsecond line", "plain"]


def test_sample_records_is_seeded_and_keeps_the_order():
    records = [{"i": i} for i in range(50)]
    sample = sample_records(records, 10, seed=3)
    assert sample == sample_records(records, 10, seed=3) != sample_records(records, 10, seed=4)
    assert len(sample) == 10 and [r["i"] for r in sample] == sorted(r["i"] for r in sample)
    assert sample_records(records, None, 0) is records and sample_records(records, 50, 0) is records
