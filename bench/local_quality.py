"""Bench how clean the embedded model's articles are: repeats, chatter and garbled titles.

    python -m bench.local_quality                        # 10 topics, the code in this tree
    python -m bench.local_quality --topics 2             # a quick check
    python -m bench.local_quality --baseline HEAD        # the same topics before and after
    python -m bench.local_quality --json bench/local_quality.json --record /tmp/replies

--json PATH writes every figure, the flagged text and the articles; --record DIR saves each
article's model calls (step, prompt, reply) as DIR/<side>/<NN>-<topic>.json, for test fixtures.

Each article is written by the real flow (GenerateOutline -> WriteSections -> ApplyStyle) with
SmolLM2-135M-Instruct started exactly as the app does (local_model.py), OPENAI_* removed. Per
article it counts:
- repeated sentences: sentences of 8+ words occurring more than once (each extra occurrence);
- repeated paragraphs: paragraphs of 8+ words occurring more than once, whitespace normalised;
- chatter lines: body lines where the model talks about the text or the request
  ("Here is the rewritten text:", "Sure!", "I hope this helps", "Note: ...");
- garbled titles: `## ` headings with words run together beyond any dictionary word
  ("that'sselvedtobesoar") or that are a formatting remark ("Available in the following format").

Articles are written in a worker process (`--worker`) whose `draftline` is the product code of a
directory: its PYTHONPATH starts with a temporary directory holding only a `draftline` symlink to
it, so a plain `import draftline` finds that code first, in the worker and in the model's child
process alike. Each article is written on a job that its real reporter keeps in an in-memory
store (tests/reporting.py).
With --baseline, a second worker runs the code at that git ref from a temporary worktree, and the
two write topic by topic in turn, so a busy machine slows both alike. The metrics are computed
here, by the same code for both sides. A baseline must come from 8186bf5 on (SHARED_STORE): older
code keeps the flow's results in another shared store, and is refused.
Needs `pip install -e '.[local]' pyspellchecker`; run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import importlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from functools import cache
from pathlib import Path

from bench.figures import machine

ROOT = Path(__file__).resolve().parent.parent

TOPICS = (
    "Why the sky is blue", "How lighthouses work", "How sourdough starters work",
    "The history of the bicycle", "A beginner's guide to tide pools", "Caring for a houseplant",
    "How to brew a good cup of tea", "Why cats purr", "How rainbows form",
    "Getting started with composting",
)  # fmt: skip

MIN_WORDS = 8  # shorter sentences and paragraphs repeat innocently ("It is a simple process.")
COUNTS = ("repeated_sentences", "repeated_paragraphs", "chatter_lines", "garbled_titles")


# --- Metrics: pure functions of an article's Markdown ----------------------------------------

# A line that opens by talking to the reader about the reply. "Here's how it works:" and
# "Sure enough" are prose, so "Here is" needs a word about the text and "Sure" its punctuation.
_META = r"(?:text|version|rewrite|rewritten|revised|polished|section|paragraphs?|article|draft|"
_META += r"response|answer|request|tone|outline|format)"
CHATTER_START = re.compile(
    rf"""^(?:
        here(?:\s+is|'s|\s+are)\b.*\b{_META}\b |
        sure\b(?!\s+enough) |
        (?:certainly|of\s+course|absolutely)\s*(?:!|\.|,\s*(?:here|i|let)\b) |
        i\s+hope\b |
        (?:i've|i\s+have)\s+(?:also\s+)?(?:rewritten|revised|kept|added|changed|included|edited|
            updated|removed|maintained|preserved|adjusted|polished|incorporated|rephrased|
            reworded|simplified|retained|made|tried|ensured|written) |
        let\s+me\s+know\b |
        feel\s+free\s+to\s+(?:ask|reach\s+out|let\s+me|contact|get\s+in\s+touch) |
        note: | \(note\b | please\s+note: | i'd\s+be\s+happy | i\s+am\s+happy | i'm\s+happy |
        as\s+an\s+ai\b | in\s+this\s+(?:rewritten|revised)\b
    )""",
    re.IGNORECASE | re.VERBOSE,
)
# Anywhere in a line: the model describing its rewrite or echoing the prompt's instructions.
# "As requested by the town council" is prose; "as requested" on its own is the model.
CHATTER_PHRASES = re.compile(
    r"""this\s+rewritten\s+text | the\s+rewritten | rewritten\s+(?:version|text) |
        in\s+a\s+warm,\s+conversational\s+tone | conversational\s+tone |
        as\s+(?:you\s+)?requested(?!\s+by) | \bas\s+an\s+ai\b | as\s+a\s+language\s+model |
        the\s+(?:original|given|provided|revised)\s+text | the\s+text\s+above |
        revised\s+version | this\s+revised | hope\s+this\s+helps | happy\s+to\s+help |
        let\s+me\s+know\s+if | your\s+request | section\s+titled | without\s+a\s+heading |
        two\s+or\s+three\s+short\s+paragraphs | all\s+of\s+its\s+facts | rewrite\s+this""",
    re.IGNORECASE | re.VERBOSE,
)
# A heading about the reply's form, not a subject. "Heading out to the rocks" is a subject.
FORMAT_REMARK = re.compile(
    r"""\bformat(?:s|ted|ting)?\b | \bbullet[- ]?points?\b | \bbold\s+text\b | \bmarkdown\b |
        \b(?:sub)?headings?\b(?!\s+(?:out|to|into|for|home|off|back|north|south|east|west)\b) |
        \brewrit(?:e|ten|ing)\b | available\s+in\s+the\s+following | \bsection\s+titles?\b |
        \boutlines?\b | \bnumbered\s+list\b | \bparagraphs?\b | \bword\s+count\b""",
    re.IGNORECASE | re.VERBOSE,
)
RUN_TOGETHER_LETTERS = 9  # the dictionary knows "photosynthesis"; not "aswellaside"
AFTER_APOSTROPHE_LETTERS = 3  # "'s", "'re", "'ll", "'ve" are at most 2; "that'sselved" is not


def normalise(text: str) -> str:
    return " ".join(text.split())


def body_lines(article: str) -> list[str]:
    """The article's lines without headings: what a reader reads as prose."""
    return [line for line in article.splitlines() if not line.lstrip().startswith("#")]


def paragraphs(article: str) -> list[str]:
    blocks = re.split(r"\n\s*\n", "\n".join(body_lines(article)))
    return [text for block in blocks if (text := normalise(block))]


def sentences(article: str) -> list[str]:
    """Sentences of the prose, list markers stripped: "- A. B." is "A." and "B."."""
    found = []
    for line in body_lines(article):
        line = re.sub(r"^\s*(?:[-*+>]|\d{1,2}[.)])\s+", "", line)
        found += [normalise(s) for s in re.split(r"(?<=[.!?])\s+", line) if s.strip()]
    return found


def repeats(items: list[str]) -> dict[str, int]:
    """Each item of MIN_WORDS or more words that occurs more than once, and its extra count."""
    counts = Counter(item for item in items if len(item.split()) >= MIN_WORDS)
    return {item: count - 1 for item, count in counts.items() if count > 1}


def is_chatter(line: str) -> bool:
    text = normalise(re.sub(r"^\s*(?:[-*+>]|\d{1,2}[.)])\s+", "", line)).strip("*_\"' ")
    text = text.replace("\u2019", "'")
    return bool(CHATTER_START.match(text) or CHATTER_PHRASES.search(text))


def chatter_lines(article: str) -> list[str]:
    return [normalise(line) for line in body_lines(article) if line.strip() and is_chatter(line)]


def section_titles(article: str) -> list[str]:
    return [line[3:].strip() for line in article.splitlines() if line.startswith("## ")]


@cache
def dictionary():
    from spellchecker import SpellChecker  # only the metrics need it, not the worker

    return SpellChecker(language="en")


def known(word: str) -> bool:
    return bool(dictionary().known([word.lower()]))


def run_together(token: str) -> bool:
    """A token no dictionary word explains: "that'sselved", or 9+ unknown letters in a row."""
    token = token.replace("\u2019", "'").strip("'-")
    if not token or known(token):  # "o'clock", "well-known"
        return False
    _, *tails = token.split("'")
    if any(len(tail) > AFTER_APOSTROPHE_LETTERS for tail in tails):
        return True
    word = re.sub(r"'s?$", "", token)  # possessives: "bicycle's", "bees'"
    parts = [part for part in word.split("-") if part.isalpha()]
    return any(len(part) >= RUN_TOGETHER_LETTERS and not known(part) for part in parts)


def title_problem(title: str) -> str | None:
    """Why a section title is garbled, or None when it reads as a subject."""
    if not re.search(r"[A-Za-z]", title):
        return "no words"
    if remark := FORMAT_REMARK.search(title):
        return f"formatting remark ({normalise(remark.group())!r})"
    for token in re.findall(r"[A-Za-z][A-Za-z'\u2019-]*", title):
        if run_together(token):
            return f"run together ({token!r})"
    return None


def garbled_titles(article: str) -> dict[str, str]:
    return {title: why for title in section_titles(article) if (why := title_problem(title))}


def measure(article: str) -> dict:
    """Every figure of one article, with what was flagged so a reader can check the counts."""
    sentence_repeats = repeats(sentences(article))
    paragraph_repeats = repeats(paragraphs(article))
    chatter = chatter_lines(article)
    garbled = garbled_titles(article)
    return {
        "words": len(article.split()),
        "repeated_sentences": sum(sentence_repeats.values()),
        "repeated_paragraphs": sum(paragraph_repeats.values()),
        "chatter_lines": len(chatter),
        "garbled_titles": len(garbled),
        "flagged": {
            "repeated_sentences": sentence_repeats,
            "repeated_paragraphs": paragraph_repeats,
            "chatter_lines": chatter,
            "garbled_titles": garbled,
        },
    }


def totals(articles: list[dict]) -> dict:
    seconds = [a["seconds"] for a in articles]
    result = {
        "articles": len(articles),
        "errors": sum(1 for a in articles if a.get("error")),
        "seconds_median": round(statistics.median(seconds), 1) if seconds else 0.0,
        "seconds_max": max(seconds, default=0.0),
        "words": sum(a["words"] for a in articles),
    }
    result |= {name: sum(a[name] for a in articles) for name in COUNTS}
    result["articles_with_repeated_sentences"] = sum(
        1 for a in articles if a["repeated_sentences"] > 1
    )
    return result


# --- Printing ---------------------------------------------------------------------------------

COLUMNS = ("secs", "words", "rep.sent", "rep.para", "chatter", "garbled")
TOPIC_WIDTH = 36
WIDTH = 11  # "123.4/456.7" fits


def row(name: str, values: list) -> str:
    name = name if len(name) <= TOPIC_WIDTH else name[: TOPIC_WIDTH - 1] + "…"
    return f"{name:<{TOPIC_WIDTH}}" + "".join(f"{v!s:>{WIDTH}}" for v in values)


def table(side: dict) -> str:
    rule = "-" * (TOPIC_WIDTH + WIDTH * len(COLUMNS))
    lines = [row("topic", list(COLUMNS)), rule]
    for a in side["articles"]:
        values = [a["seconds"], a["words"], *(a[name] for name in COUNTS)]
        lines.append(row(a["topic"] + (" (FAILED)" if a.get("error") else ""), values))
    t = side["totals"]
    lines.append(rule)
    lines.append(row(f"total of {t['articles']}, secs median/max",
                     [f"{t['seconds_median']}/{t['seconds_max']}", t["words"],
                      *(t[name] for name in COUNTS)]))  # fmt: skip
    lines.append(f"articles with more than one repeated sentence: "
                 f"{t['articles_with_repeated_sentences']} of {t['articles']}")  # fmt: skip
    return "\n".join(lines)


def clip(text: str, width: int = 110) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def flagged(side: dict) -> str:
    """What each count counted, article by article, so a surprising figure can be checked."""
    lines = []
    for a in side["articles"]:
        found = a["flagged"]
        items = [f"  FAILED: {a['error']}"] if a.get("error") else []
        items += [f"  repeated sentence +{n}: {clip(s)}"
                  for s, n in found["repeated_sentences"].items()]  # fmt: skip
        items += [f"  repeated paragraph +{n}: {clip(p)}"
                  for p, n in found["repeated_paragraphs"].items()]  # fmt: skip
        items += [f"  chatter: {clip(line)}" for line in found["chatter_lines"]]
        items += [f"  garbled title: {t!r}: {why}" for t, why in found["garbled_titles"].items()]
        if items:
            lines += [a["topic"], *items]
    return "\n".join(lines) or "(nothing flagged)"


def comparison(before: dict, after: dict) -> str:
    names = ("seconds_median", "seconds_max", "words", *COUNTS, "articles_with_repeated_sentences",
             "errors")  # fmt: skip
    lines = [row("totals", ["baseline", "current", "change"])]
    for name in names:
        old, new = before[name], after[name]
        lines.append(row(name, [old, new, f"{round(new - old, 1):+}"]))
    return "\n".join(lines)


# --- The worker: writes articles with the product code of one directory -----------------------

STEPS = {"outline": "outline", "sections": "section", "style": "style"}


class CallLog:
    """Keeps every reply the flow gets by replacing `complete` and `stream` on the LLM object in
    the shared store; each call is put down to the step the job's reporter last reported."""

    def __init__(self, chat):
        self.report = None  # the current article's tests.reporting.Recorder
        self.calls: list[dict] = []
        self._complete, self._stream = chat.complete, chat.stream
        self._in_complete = contextvars.ContextVar("in_complete", default=False)
        chat.complete, chat.stream = self.complete, self.stream

    def begin(self, report) -> None:
        self.report, self.calls = report, []

    def _call(self, kind: str, messages: list, options: dict) -> dict:
        extra = options.get("extra_body") or {}
        step = self.report.latest if self.report else ""
        call = {"step": STEPS.get(step, step), "call": kind,
                "max_tokens": options.get("max_tokens"), "grammar": "grammar" in extra,
                "messages": messages, "reply": "", "started": time.monotonic()}  # fmt: skip
        self.calls.append(call)
        return call

    @staticmethod
    def _end(call: dict, error: Exception | None = None) -> None:
        call["seconds"] = round(time.monotonic() - call.pop("started"), 2)
        if error is not None:
            call["error"] = f"{type(error).__name__}: {error}"

    async def complete(self, messages, **options):
        call = self._call("complete", messages, options)
        entered = self._in_complete.set(True)  # LLM.complete may stream through LLM.stream
        try:
            reply = await self._complete(messages, **options)
        except Exception as exc:
            self._end(call, exc)
            raise
        finally:
            self._in_complete.reset(entered)
        call["reply"], call["cut_short"] = reply.text, reply.cut_short
        self._end(call)
        return reply

    async def stream(self, messages, **options):
        if self._in_complete.get():  # already recorded as one complete() call
            async with contextlib.aclosing(self._stream(messages, **options)) as pieces:
                async for piece in pieces:
                    yield piece
            return
        call = self._call("stream", messages, options)
        try:
            async with contextlib.aclosing(self._stream(messages, **options)) as pieces:
                async for piece in pieces:
                    call["reply"] += str(piece)
                    yield piece
        except GeneratorExit:
            self._end(call)
            call["stopped_early"] = True  # the caller stopped reading
            raise
        except Exception as exc:
            self._end(call, exc)
            raise
        self._end(call)


def check_product(product_dir: Path) -> None:
    """SystemExit unless every `draftline` module imported so far is product_dir's code.

    The Worker's PYTHONPATH puts product_dir first, but `draftline` has no __init__.py, so it is
    a namespace package: an installed copy (an editable install's path hook, a site-packages
    directory) joins its search path after product_dir, and a module the product lacks would
    silently come from there instead of failing to import."""
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)  # None for the namespace package itself
        if not name.startswith("draftline.") or file is None:
            continue
        if not Path(file).resolve().is_relative_to(product_dir):
            raise SystemExit(f"{name} came from {file}, not {product_dir}")


async def serve(product_dir: Path, out) -> None:
    """Start the model once, then write one article per topic read from stdin."""
    for name in ("config", "llm", "local_model", "pocketflow_nodes"):
        importlib.import_module(f"draftline.{name}")
    from bench.embedded import embedded_model, run_article_flow
    from tests.reporting import shared_for

    check_product(product_dir)
    async with embedded_model() as embedded:
        calls = CallLog(embedded.chat)
        send(out, {"model": embedded.name, "server_start_s": embedded.start_s})
        while line := await asyncio.to_thread(sys.stdin.readline):
            shared = await shared_for(embedded.chat, json.loads(line)["topic"])
            calls.begin(shared["report"])
            run = await run_article_flow(shared, embedded.settings)
            check_product(product_dir)  # and whatever the flow imported as it ran
            send(out, written(shared["job"], run, calls))


def written(job, run: dict, calls: CallLog) -> dict:
    """What the worker sends of one article: how it went, what the job holds, the model's calls."""
    sections = [{"title": s["title"], "text": s["text"]} for s in job.sections]
    return {"topic": job.topic, **run, "outline": job.outline, "sections": sections,
            "article": job.article, "calls": calls.calls}  # fmt: skip


def send(out, message: dict) -> None:
    out.write(json.dumps(message, default=str) + "\n")  # an unexpected type must not lose work
    out.flush()


def worker(product_dir: Path) -> None:
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything else printed, by us or a library, goes to stderr, not into the JSON
    asyncio.run(serve(product_dir.resolve(), out))


# --- The parent: runs workers, measures, prints ----------------------------------------------


class Worker:
    """A worker process writing articles with the product code of one directory."""

    def __init__(self, side: str, product_dir: Path):
        self.side = side
        # Where the worker finds `draftline`: a directory holding nothing but a symlink of that
        # name to product_dir, first on its PYTHONPATH (and its model child's, which inherits it).
        self.imports = Path(tempfile.mkdtemp(prefix="draftline-bench-imports-"))
        (self.imports / "draftline").symlink_to(product_dir, target_is_directory=True)
        path = [str(self.imports), *filter(None, [os.environ.get("PYTHONPATH")])]
        # From this tree's root, like the parent: this bench and tests.reporting are this tree's,
        # the `draftline` it measures is product_dir's.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.local_quality", "--worker", str(product_dir)],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": os.pathsep.join(path)},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.info: dict = {}

    def ready(self) -> dict:
        self.info = self._receive()  # a worker that cannot start has said why on stderr
        return self.info

    def write(self, topic: str) -> dict:
        self.process.stdin.write(json.dumps({"topic": topic}) + "\n")
        self.process.stdin.flush()
        return self._receive()

    def _receive(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"the {self.side} worker ended (exit code {self.process.wait()})")
        return json.loads(line)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.process.stdin.close()  # end of topics: the worker stops its model and exits
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        (self.imports / "draftline").unlink()  # the symlink only, never the code it points to
        self.imports.rmdir()


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True,
                          text=True).stdout.strip()  # fmt: skip


def describe_tree() -> str:
    dirty = " + uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else ""
    return f"working tree at {git('rev-parse', '--short', 'HEAD')}{dirty}"


# The first commit whose flow keeps the job, its reporter and the LLM in its shared store (the
# merge of issue 10's LLM object): the worker writes articles that way, so a baseline must be
# this commit or a later one.
SHARED_STORE = "8186bf569c9b43d6467b3d44a69ebbd04a5c4090"


def baseline_code(ref: str) -> str:
    """`ref` and its commit, or SystemExit saying why the worker cannot write with its code."""
    try:
        commit = git("rev-parse", "--verify", "--short", f"{ref}^{{commit}}")
    except subprocess.CalledProcessError:
        raise SystemExit(f"--baseline {ref}: no such commit in {ROOT}") from None
    try:
        git("merge-base", "--is-ancestor", SHARED_STORE, commit)
    except subprocess.CalledProcessError as exc:
        if exc.returncode != 1:  # e.g. a clone without that commit
            raise SystemExit(f"--baseline {ref}: cannot tell whether it comes after "
                             f"{SHARED_STORE[:7]}: {exc.stderr.strip()}") from None  # fmt: skip
        raise SystemExit(
            f"--baseline {ref} ({commit}) predates {SHARED_STORE[:7]}, where the flow's shared "
            "store became the job, its reporter and the LLM; this bench writes articles that "
            f"way only. Compare with {SHARED_STORE[:7]} or a later commit."
        ) from None
    return f"{ref} ({commit})"


@contextlib.contextmanager
def worktree(ref: str):
    """The product code at `ref`, checked out beside this one for as long as the run lasts."""
    parent = Path(tempfile.mkdtemp(prefix="draftline-baseline-"))
    path = parent / "tree"
    try:
        git("worktree", "add", "--detach", str(path), ref)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(parent, ignore_errors=True)
        raise SystemExit(f"cannot check out {ref}: {exc.stderr.strip()}") from None
    try:
        yield path
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            git("worktree", "remove", "--force", str(path))
        shutil.rmtree(parent, ignore_errors=True)
        with contextlib.suppress(subprocess.CalledProcessError):
            git("worktree", "prune")


def scored(result: dict) -> dict:
    """A worker's article with its figures; the calls stay out of the printed JSON."""
    article = {k: v for k, v in result.items() if k != "calls"}
    return article | measure(result["article"])


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]


def record(directory: Path, side: str, code: str, number: int, result: dict) -> None:
    folder = directory / side
    folder.mkdir(parents=True, exist_ok=True)
    fixture = {"topic": result["topic"], "code": code, "seconds": result["seconds"],
               "error": result["error"], "calls": result["calls"], "outline": result["outline"],
               "article": result["article"]}  # fmt: skip
    path = folder / f"{number:02d}-{slug(result['topic'])}.json"
    path.write_text(json.dumps(fixture, indent=2, ensure_ascii=False) + "\n")


def progress(side: str, result: dict) -> None:
    steps = ", ".join(f"{name} {s} s" for name, s in result["steps_s"].items())
    print(f"  [{side}] {result['topic']}: {result['seconds']} s ({steps}; "
          f"{len(result['calls'])} calls)", file=sys.stderr, flush=True)  # fmt: skip


def order(sides: list[str], index: int) -> list[str]:
    """Who writes first swaps each topic, so neither side always meets the warmer machine."""
    return sides if index % 2 == 0 else sides[::-1]


def run(args: argparse.Namespace, trees: dict[str, Path], codes: dict[str, str]) -> dict:
    workers = {side: Worker(side, tree) for side, tree in trees.items()}
    try:
        sides = {side: {"code": codes[side], **w.ready(), "articles": []}
                 for side, w in workers.items()}  # fmt: skip
        for index, topic in enumerate(TOPICS[: args.topics]):
            for side in order(list(workers), index):
                result = workers[side].write(topic)
                if args.record:
                    record(args.record, side, codes[side], index + 1, result)
                sides[side]["articles"].append(scored(result))
                progress(side, result)
    finally:
        for w in workers.values():
            w.close()
    for side in sides.values():
        side["totals"] = totals(side["articles"])
    return sides


def print_report(result: dict) -> None:
    sides = result["sides"]
    for name, side in sides.items():
        print(f"\n{name}: {side['code']}; {side['model']}, server ready in "
              f"{side['server_start_s']} s\n")  # fmt: skip
        print(table(side))
        print(f"\nflagged ({name}):\n{flagged(side)}")
    if "baseline" in sides:
        print("\n" + comparison(sides["baseline"]["totals"], sides["current"]["totals"]))


def main(args: argparse.Namespace) -> dict:
    codes = {"current": describe_tree()}
    if args.baseline:
        codes["baseline"] = baseline_code(args.baseline)
    result = {
        **machine(),
        "topics": list(TOPICS[: args.topics]),
    }
    print(f"{result['machine']}; load average {result['load_average_at_start']}", flush=True)
    with contextlib.ExitStack() as stack:
        trees = {"current": ROOT}
        if args.baseline:
            trees = {"baseline": stack.enter_context(worktree(args.baseline)), **trees}
        result["sides"] = run(args, trees, codes)
    return result


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--topics", type=int, default=len(TOPICS),
                        help=f"write only the first N of the {len(TOPICS)} topics")  # fmt: skip
    parser.add_argument("--baseline", metavar="GIT_REF",
                        help="also run the code at this ref, topic by topic in turn")  # fmt: skip
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write every figure here")
    parser.add_argument("--record", type=Path, metavar="DIR",
                        help="save each article's model replies here as JSON")  # fmt: skip
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # the product directory
    return parser.parse_args()


if __name__ == "__main__":
    args = arguments()
    if args.worker:
        worker(args.worker)
    else:
        result = main(args)
        print_report(result)
        if args.json:
            args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
