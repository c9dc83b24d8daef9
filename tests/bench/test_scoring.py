"""How bench.fidelity scores a transcript (bench.scoring): formatting is not a recognition error."""

from __future__ import annotations

from bench.scoring import closed_compounds, wer


def test_digits_contractions_and_titles_have_one_spelling() -> None:
    assert wer(["press one now i am here mister smith"], ["Press 1 now. I'm here, Mr. Smith."]) == 0.0
    assert wer(["press one now"], ["Press 1 now."], plain=True) > 0  # the plain figure keeps it


def test_a_compound_written_open_in_one_place_and_closed_in_another_is_one_spelling() -> None:
    # The Asterisk texts themselves write "touch tone" in one prompt and "touchtone" in the next.
    reference = ["enter it on your touch tone keypad", "using your touchtone keypad"]
    assert wer(reference, ["enter it on your touchtone keypad", "using your touch tone keypad"]) == 0.0
    assert wer(["kick all non administrator users"], ["kick all nonadministrator users"]) == 0.0
    # A real error next to a compound still counts: users -> user.
    assert wer(["kick all non administrator users"], ["kick all nonadministrator user"]) == 0.25


def test_only_words_that_also_appear_closed_are_joined() -> None:
    assert closed_compounds(["touch tone", "touchtone"]) == {"touchtone"}
    assert closed_compounds(["press one to record", "press two"]) == set()
    assert closed_compounds(["log in here", "then log on"]) == set()  # "login" written nowhere
    assert wer(["log in here"], ["log on here"]) > 0
