"""The fixed-15% vs uniform-t experiment (notebook 05 and its recorded budgets): the verdict follows the numbers,
and a recorded budget is the JSON that the notebook reads back."""
import json

from llada_play.experiments import masking_ratio as mr


def result(steps, fixed_nll, uniform_nll, se=0.1, nelbo_fixed=5.8, nelbo_uniform=5.9):
    written = {mr.FIXED: {"nll": [fixed_nll, se], "distinct": [0.5, 0.1]},
               mr.UNIFORM: {"nll": [uniform_nll, se], "distinct": [0.5, 0.1]}}
    return {"steps": steps, "tokens_per_model": steps * 2048, "nelbo": {mr.FIXED: nelbo_fixed, mr.UNIFORM: nelbo_uniform},
            "written": written}


def test_the_verdict_needs_two_standard_errors_and_names_the_lower_bound():
    inside = result(1000, 5.85, 5.65)  # 0.20 apart, 2 SE of the difference = 0.28
    assert not mr.uniform_writes_better(inside)
    lines = mr.conclusion(inside)
    assert "no difference shown" in lines[0] and f"lower NELBO: {mr.FIXED}" in lines[0]
    assert lines[1] == "uniform-t does not write better at this budget"
    beyond = result(4000, 6.2, 5.6, nelbo_uniform=5.5)
    assert mr.uniform_writes_better(beyond) and mr.conclusion(beyond)[1] == "uniform-t writes better here"
    assert f"lower NELBO: {mr.UNIFORM}" in mr.conclusion(beyond)[0]
    assert not mr.uniform_writes_better(result(4000, 5.6, 6.2))  # separated, the other way


def test_a_recorded_budget_is_written_and_read_back(tmp_path):
    out = tmp_path / "budget-2.json"
    mr.main(["--steps", "2", "--seeds", "2", "--out", str(out)])
    recorded = mr.recorded_results(tmp_path)
    assert [r["steps"] for r in recorded] == [2] and recorded[0] == json.loads(out.read_text())
    r = recorded[0]
    assert set(r["nelbo"]) == set(r["written"]) == {mr.FIXED, mr.UNIFORM} and r["seeds"] == 2
    assert [float(t) for t in r["loss_by_ratio"][mr.FIXED]] == mr.RATIOS
    assert all(0 < v < 20 for v in r["nelbo"].values()) and r["wall_minutes"] >= 0
    assert len(mr.conclusion(r)) == 2
