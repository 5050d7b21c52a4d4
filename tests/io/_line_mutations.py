"""Hypothesis strategy: a real capture with some lines deleted, duplicated, truncated or with a
character flipped (the damage a copy, a paste or a full disk does to a file)."""

from hypothesis import strategies as st

OPS = ("delete", "duplicate", "truncate", "flip")
# flips draw from text a paste can hold: digits, letters, separators, the colon and a few oddities
FLIP_CHARS = st.sampled_from(list("0123456789 \tabkBxyzKMGi:;,.-_#()<>/%") + ["é", "€"])


@st.composite
def mutated(draw, text: str, max_ops: int = 5) -> str:
    """``text`` with up to ``max_ops`` line mutations."""
    lines = text.splitlines()
    op = st.tuples(st.sampled_from(OPS), st.integers(0, 10**6), st.integers(0, 10**6), FLIP_CHARS)
    ops = draw(st.lists(op, max_size=max_ops))
    for op, where, pos, char in ops:
        if not lines:
            break
        i = where % len(lines)
        line = lines[i]
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, line)
        elif op == "truncate":
            lines[i] = line[: pos % (len(line) + 1)]
        else:
            j = pos % (len(line) + 1)
            lines[i] = line[:j] + char + line[j + 1 :]
    return "\n".join(lines) + "\n"


def records(df) -> list[tuple]:
    """The rows of a reader's frame as tuples without the ``block`` column (a damaged line may split a
    table in two), missing values as None: to find an unchanged line's record in a mutated input's frame."""
    rows = df.drop(columns="block").astype(object)
    return list(rows.where(rows.notna(), None).itertuples(index=False, name=None))
