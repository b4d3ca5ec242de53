"""Held-out references that repeat a training answer (pure, no files)."""

from cluster.chat import Example, verbatim_references


def chat(answer: str, line: int = 0, user: str = "q") -> Example:
    return Example(
        [{"role": "user", "content": user}, {"role": "assistant", "content": answer}], line=line
    )


def test_verbatim_references_ignore_case_and_whitespace_but_not_wording():
    train = [
        chat("Returns are accepted for 45 days."),
        Example(
            [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "Hello! How can I help?"},
                {"role": "user", "content": "phone?"},
                {"role": "assistant", "content": "Call 555-0147."},
            ]
        ),
    ]
    heldout = [
        chat("returns are accepted   for 45 DAYS.", line=1),
        chat("You have 45 days to send it back.", line=2),
        chat("Hello!  how can I help?", line=3),  # an earlier training turn counts too
    ]
    assert verbatim_references(train, heldout) == [
        (1, "returns are accepted   for 45 DAYS."),
        (3, "Hello!  how can I help?"),
    ]
    assert verbatim_references(train, [chat("Call 555-0147 or e-mail us.", line=1)]) == []
