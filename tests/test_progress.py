"""The time estimates of the page's long runs (llada_play.ui.progress): known step times in, known estimates out."""
import pytest

from llada_play.ui.progress import (SKIPPED_STEPS, TIMED_BEFORE_ESTIMATE, WINDOW, Phase, RunClock, format_duration,
                                    left_words, seconds_per_step, time_left)


@pytest.mark.parametrize("seconds, words", [
    (-3, "a few seconds"), (0, "a few seconds"), (2.4, "a few seconds"),
    (2.5, "about 5 s"), (7.4, "about 5 s"), (7.5, "about 10 s"), (42, "about 40 s"), (43, "about 45 s"),
    (57.4, "about 55 s"), (57.5, "about 1 min"), (64, "about 1 min"), (65, "about 1 min 10 s"),
    (154, "about 2 min 30 s"), (155, "about 2 min 40 s"), (158, "about 2 min 40 s"), (594, "about 9 min 50 s"),
    (595, "about 10 min"), (725, "about 12 min"), (3569, "about 59 min"), (3570, "about 1 h"),
    (3900, "about 1 h 5 min"), (7350, "about 2 h 5 min"),
])
def test_durations_are_said_as_an_estimate_is_worth(seconds, words):
    assert format_duration(seconds) == words


def test_the_speed_is_timed_after_the_first_steps_over_the_latest_window():
    # step 1 ends at 5 s (loading, warm-up), step 2 at 8 s, then one step a second
    ends = [5, 8, 9, 10, 11, 12]
    assert SKIPPED_STEPS == 2 and seconds_per_step(ends) == 1.0
    assert seconds_per_step(ends, skip=0) == pytest.approx(7 / 5)
    assert seconds_per_step(ends[:3]) is None  # one end after the skipped ones: no interval yet
    # 100 steps of 1 s, then WINDOW steps of 3 s: the window holds only the slow ones
    ends = [float(i) for i in range(102)]
    ends += [ends[-1] + 3 * (i + 1) for i in range(WINDOW)]
    assert seconds_per_step(ends) == 3.0
    assert seconds_per_step(ends, window=2 * WINDOW) == pytest.approx((WINDOW * 3 + WINDOW * 1) / (2 * WINDOW))


def test_time_left_is_the_steps_left_at_the_speed_then_the_rest():
    assert time_left(94, 1.5, 10) == 151.0
    assert time_left(0, 1.5, 10) == 10.0 and time_left(-5, 1.5, -1) == 0.0


def steps(clock: RunClock, phase: int, ends: list[float], first: int = 1) -> None:
    for i, at in enumerate(ends):
        clock.step(phase, first + i, at)


def test_one_phase_run_estimates_from_its_measured_speed():
    clock = RunClock([Phase(100, after=10, kind="sft")], started_at=0.0)
    assert clock.left(0.0) is None
    steps(clock, 0, [5, 7, 8, 9, 10])  # five steps: the speed is not known yet
    assert SKIPPED_STEPS + TIMED_BEFORE_ESTIMATE + 1 == 6 and clock.left(10.0) is None
    assert left_words(clock, 10.0) == "Timing the first steps on this machine..."
    clock.step(0, 6, 11.0)
    assert clock.per_step() == 1.0
    assert clock.left(11.0) == 94 + 10  # 94 steps of 1 s, then the untimed work of 10 steps
    assert clock.total(11.0) == 115.0
    assert left_words(clock, 11.0) == "About 1 min 40 s left (1.00 s a step on this machine)"
    # the machine gets busy: 3 s a step from now on; the estimate follows within the window
    steps(clock, 0, [11.0 + 3 * (i + 1) for i in range(WINDOW)], first=7)
    assert clock.per_step() == 3.0 and clock.steps_done() == 6 + WINDOW
    assert clock.left(161.0) == (100 - 6 - WINDOW) * 3 + 10 * 3


def test_expected_untimed_work_replaces_the_guess_until_measured():
    clock = RunClock([Phase(10, after=5, kind="sft")], started_at=0.0)
    clock.expect_after("sft", 42.0)
    steps(clock, 0, [1, 2, 3, 4, 5, 6])
    assert clock.left(6.0) == 4 + 42
    clock.expect_after("sft", 1.0)  # the first expectation stands
    assert clock.after_s(0) == 42.0


def test_phases_share_the_speed_of_their_kind_and_measure_their_untimed_work():
    phases = [Phase(10, after=20, kind="diffusion"), Phase(10, after=5, kind="autoregressive"),
              Phase(10, after=20, kind="diffusion")]
    clock = RunClock(phases, started_at=0.0)
    steps(clock, 0, [float(i) for i in range(1, 11)])  # 1 s a step, the last at 10 s
    # scoring the first model (guessed as 20 steps: 20 s); the second model at 1 s a step (any kind's speed
    # until its own is known), then its 5 steps' scoring, then the third as the first
    assert clock.left(10.0) == 20 + (10 + 5) + (10 + 20)
    assert clock.left(15.0) == 15 + (10 + 5) + (10 + 20)  # 5 s into the scoring
    assert clock.left(45.0) == 0 + (10 + 5) + (10 + 20)  # past the guess: nothing left of it, never negative
    # the second model's first step ends at 51 s: scoring took 51 - 10 - 1 (that step) = 40 s
    steps(clock, 1, [51.0 + 2 * i for i in range(10)])  # 2 s a step, the last at 69 s
    assert clock.after_s(0) == 40.0 and clock.per_step(1) == 2.0
    assert clock.per_step(2) == 1.0  # the third phase: diffusion's own speed
    assert clock.left(69.0) == 5 * 2 + (10 * 1 + 40)  # the second's scoring (5 of its steps), the third model
    clock.step(2, 1, 100.0)
    assert clock.after_s(1) == 100 - 69 - 1.0  # measured, up to the start of the next phase's first step
    steps(clock, 2, [101.0 + i for i in range(9)], first=2)
    clock.finished(140.0)
    assert clock.after_s(2) == 140 - 109


def test_a_short_phase_is_timed_whole_once_it_is_over():
    clock = RunClock([Phase(4, after=2, kind="a"), Phase(4, after=2, kind="a")], started_at=0.0)
    steps(clock, 0, [2.0, 3.0, 4.0])
    assert clock.per_step() is None  # three steps of four: not enough to time
    clock.step(0, 4, 5.0)
    assert clock.per_step() == 1.0  # the last two ends after the skipped ones: 1 s
    assert clock.left(5.0) == 2 + (4 + 2)
    with pytest.raises(ValueError, match="at least one phase"):
        RunClock([], 0.0)


def test_the_reversal_clock_guesses_scoring_from_the_rows_scored():
    from llada_play.experiments.reversal_experiment import ReversalConfig
    from llada_play.ui.tabs.reversal import SCORING_STEPS, experiment_clock, scoring_steps

    quick = ReversalConfig.quick()
    assert scoring_steps("diffusion", quick) == SCORING_STEPS["diffusion"]
    assert scoring_steps("autoregressive", quick) == SCORING_STEPS["autoregressive"]
    half = ReversalConfig.quick(eval_rows=20, mc_samples=32)  # half the rows, twice the samples: as many passes
    assert scoring_steps("diffusion", half) == SCORING_STEPS["diffusion"]
    assert scoring_steps("autoregressive", half) == SCORING_STEPS["autoregressive"] / 2
    clock, jobs = experiment_clock(quick, 0.0)
    assert jobs == [(0, "diffusion"), (0, "autoregressive"), (1, "diffusion"), (1, "autoregressive")]
    assert [(p.steps, p.kind) for p in clock.phases] == [(1000, kind) for _, kind in jobs]
    steps(clock, 0, [float(i) for i in range(1, 7)])  # 1 s a training step
    assert clock.left(6.0) == 994 + SCORING_STEPS["diffusion"] + (1000 + SCORING_STEPS["autoregressive"]) * 2 \
        + 1000 + SCORING_STEPS["diffusion"]


def test_the_estimate_line_adds_the_whole_run_once_known():
    from llada_play.ui.progress import estimate_words

    clock = RunClock([Phase(100, after=10, kind="sft")], started_at=0.0)
    assert estimate_words(clock, 1.0) == "Timing the first steps on this machine..."
    steps(clock, 0, [5, 7, 8, 9, 10, 11])
    assert estimate_words(clock, 11.0) == ("About 1 min 40 s left (1.00 s a step on this machine); the whole run: "
                                           "about 2 min.")
    assert estimate_words(clock, 11.0, "training step", so_far=True).endswith(
        "(1.00 s a training step on this machine); the whole run: about 2 min (10 s so far).")
