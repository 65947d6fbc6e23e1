"""Check the question set against the parsed corpus: schema, gold ids, facts and counts.

Run as `python -m eval.check [questions.jsonl]`; exits non-zero and lists every problem.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from assistant.ingest.parsing import parse_paths
from assistant.items import DutyItem
from assistant.settings import CORPUS_DIR
from eval.questions import QUESTIONS_FILE, Question, QuestionError, load_questions


def problems(questions: Sequence[Question], items: Iterable[DutyItem]) -> list[str]:
    """Everything in the questions that the corpus contradicts, as 'id: problem' lines."""
    by_id = {item.id: item for item in items}
    found = []
    for q in questions:
        missing = [g for g in q.gold if g not in by_id]
        if missing:
            found.append(f"{q.id}: gold ids not in the corpus: {', '.join(missing)}")
        if len(set(q.gold)) != len(q.gold):
            found.append(f"{q.id}: gold lists an id twice")
        texts = [by_id[g].full_text() for g in q.gold if g in by_id]
        for fact in q.facts:
            holders = sum(fact in text for text in texts)
            needed = len(texts) if q.match == "any" else 1
            if texts and holders < needed:
                found.append(f"{q.id}: fact {fact!r} is not in {'every' if q.match == 'any' else 'any'} gold item")
        if q.count is not None and q.gold and q.count != len(q.gold):
            found.append(f"{q.id}: count {q.count} but {len(q.gold)} gold ids")
    return found


def main(argv: Sequence[str] = ()) -> int:
    path = Path(argv[0]) if argv else QUESTIONS_FILE
    try:
        questions = load_questions(path)
    except QuestionError as exc:
        print(exc, file=sys.stderr)
        return 1
    documents, errors = parse_paths([CORPUS_DIR])
    for error in errors:
        print(f"corpus: {error}", file=sys.stderr)
    found = problems(questions, (item for doc in documents for item in doc.items))
    for line in found:
        print(line, file=sys.stderr)
    print(f"{len(questions)} questions, {len(found)} problems")
    return 1 if found or errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
