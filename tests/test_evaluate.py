"""``freshrec evaluate``: the decision-log format is checked line by line, targets become
(n, k) logs with short slates masked, and the command writes its table, JSON and PNG."""

import json

import numpy as np
import pytest

from api.cli import main
from simulators.evaluate import evaluate, logged_slates, read_decisions


def decision(i: int, items=("a", "b"), clicks=(1, 0), targets=None, rhat=(0.5, 0.2)) -> dict:
    k = len(items)
    return {"recommendation_id": f"r{i}", "user_id": "u", "t": float(i), "context": None,
            "items": list(items), "logging": [0.5] * k, "rewards": list(clicks),
            "rhat": None if rhat is None else list(rhat)[:k],
            "targets": targets if targets is not None else {"greedy": {"p": [1.0] + [0.0] * (k - 1),
                                                                        "rhat": [0.5] * k}}}


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_bad_line_is_refused_with_its_number(tmp_path):
    bad = decision(1)
    bad["logging"] = [0.5]  # one propensity for two items
    path = write(tmp_path / "log.jsonl", [decision(0), bad])
    with pytest.raises(ValueError, match=r"log.jsonl:2: logging must be a list of 2"):
        read_decisions(path)
    zero = decision(0)
    zero["logging"] = [0.0, 0.5]
    with pytest.raises(ValueError, match=r"outside \(0.0, 1.0\]"):
        read_decisions(write(tmp_path / "z.jsonl", [zero]))
    for field, value, message in [("t", "yesterday", "t must be the event time"),
                                  ("items", [1, 2], "items must be a list of item ids")]:
        odd = decision(0)
        odd[field] = value
        with pytest.raises(ValueError, match=message):
            read_decisions(write(tmp_path / f"{field}.jsonl", [odd]))
    reserved = decision(0, targets={"logging": {"p": [1, 0]}})
    with pytest.raises(ValueError, match="reserved"):
        read_decisions(write(tmp_path / "r.jsonl", [reserved]))


def test_window_keeps_the_last_decisions(tmp_path):
    path = write(tmp_path / "log.jsonl", [decision(i) for i in range(10)])
    assert [d["recommendation_id"] for d in read_decisions(path, window=3)] == ["r7", "r8", "r9"]


def test_short_slates_are_masked_and_partial_targets_warned():
    rows = [decision(0), decision(1, items=("c",), clicks=(1,), rhat=None, targets={})]
    log = logged_slates(rows, "logging")
    assert log.mask.tolist() == [[True, True], [True, False]]
    assert log.rhat is None  # one decision has no reward model: no DR
    greedy = logged_slates(rows, "greedy")
    assert greedy.n == 1 and greedy.rhat is not None
    out = evaluate(rows, ("slot",), resamples=50)
    assert {(r["policy"], r["estimator"]) for r in out} == {("logging", "ips"), ("logging", "snips"),
                                                            ("greedy", "ips"), ("greedy", "snips"), ("greedy", "dr")}
    logging_ips = next(r for r in out if r["policy"] == "logging" and r["estimator"] == "ips")
    assert logging_ips["value"] == 1.0  # 2 clicks over 2 decisions, on-policy
    greedy_ips = next(r for r in out if r["policy"] == "greedy" and r["estimator"] == "ips")
    assert greedy_ips["value"] == 2.0  # weight 1 / 0.5 on the clicked first slot
    assert greedy_ips["warnings"][0].startswith("partial: evaluated on the 1 of 2 decisions")


def test_the_command_prints_a_table_and_writes_json_and_png(tmp_path, capsys):
    rng = np.random.default_rng(0)
    rows = [decision(i, clicks=tuple(int(x) for x in rng.random(2) < 0.3)) for i in range(200)]
    path = write(tmp_path / "log.jsonl", rows)
    out = tmp_path / "out"
    assert main(["evaluate", str(path), "--out", str(out), "--resamples", "100", "--window", "150"]) == 0
    printed = capsys.readouterr().out
    assert "150 decisions" in printed and "greedy" in printed and "95% interval" in printed
    data = json.loads((out / "evaluate.json").read_text())
    assert data["decisions"] == 150 and len(data["estimates"]) == 2 * 2 + 3 * 2
    assert (out / "evaluate.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_unknown_or_unsupported_variant_is_refused_by_name(tmp_path):
    path = write(tmp_path / "log.jsonl", [decision(i) for i in range(3)])
    with pytest.raises(SystemExit, match="--variants slt: expected some of slot, prefix, slate"):
        main(["evaluate", str(path), "--variants", "slot,slt", "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit, match="pbm weights need every logged item's exposure"):
        main(["evaluate", str(path), "--variants", "pbm", "--out", str(tmp_path / "out")])


def test_an_empty_or_malformed_log_is_a_message_not_a_traceback(tmp_path):
    """The command names the file (and line) and exits with its message (SystemExit: exit 1
    with the text on stderr), for an empty log as for a bad line."""
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(SystemExit, match="empty.jsonl holds no decision"):
        main(["evaluate", str(empty), "--out", str(tmp_path / "out")])
    bad = decision(1)
    bad["rewards"] = [1]
    with pytest.raises(SystemExit, match=r"freshrec evaluate: .*bad.jsonl:1: rewards must be a list of 2"):
        main(["evaluate", str(write(tmp_path / "bad.jsonl", [bad])), "--out", str(tmp_path / "out")])
