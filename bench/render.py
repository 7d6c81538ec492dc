"""What drawing a streaming article costs: the whole Markdown every update, or block by block.

While ApplyStyle streams, the article's fragment is drawn again every runner.STREAM_INTERVAL
(about every 12 tokens at 20 ms a token). This streams a WORDS-word article of PARAGRAPHS
paragraphs in 12-word steps and draws each step through views.markdown (blocks, each drawn
once and remembered) and as one whole document, taking turns for ROUNDS rounds; prints the
milliseconds per article for each, and the ratio.

    python -m bench.render [--words 2600] [--paragraphs 26] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench.figures import machine
from draftline import views


def article(words: int, paragraphs: int, round_: int) -> str:
    """Headings and paragraphs, different each round so nothing is remembered between them."""
    per = words // paragraphs
    parts = []
    for p in range(paragraphs):
        if p % 4 == 0:
            parts.append(f"## Part {p // 4 + 1} of round {round_}")
        parts.append(" ".join(f"*w{round_}x{p}y{i}*" if i % 9 == 0 else f"w{round_}x{p}y{i}"
                              for i in range(per)) + ".")  # fmt: skip
    return "\n\n".join(parts)


def stream_cost(text: str, draw) -> float:
    """Seconds to draw every 12-word step of `text`, as its viewers' updates would."""
    words = text.split(" ")
    started = time.perf_counter()
    for end in range(12, len(words) + 12, 12):
        draw(" ".join(words[:end]))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--words", type=int, default=2600)
    parser.add_argument("--paragraphs", type=int, default=26)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(machine())
    costs: dict[str, list[float]] = {"blocks": [], "whole": []}
    for round_ in range(args.rounds):
        text = article(args.words, args.paragraphs, round_)
        costs["blocks"].append(stream_cost(text, views.markdown))
        costs["whole"].append(stream_cost(text, views.markdown_whole))
    blocks, whole_ = (statistics.median(costs[k]) for k in ("blocks", "whole"))
    print(f"{args.words} words in {args.paragraphs} paragraphs, drawn every 12 words")
    print(f"  block by block: {blocks * 1000:8.1f} ms per article (median of {args.rounds})")
    print(f"  whole:          {whole_ * 1000:8.1f} ms per article")
    print(f"  blocks / whole: {blocks / whole_:.2f}")


if __name__ == "__main__":
    main()
