"""A useful node in Python: counts the words, lines and characters of a text
and finds its three most frequent words, with the standard library only.
"""

# componentize-py snapshots the interpreter after importing this module, and
# the component has no files at run time: every module the node will use must
# be imported here, at build time, including those the standard library only
# imports lazily. Counter.most_common(n) imports heapq on its first call.
import heapq  # noqa: F401 (needed by Counter.most_common)
import json
import re
from collections import Counter

from componentize_py_types import Err

from wit_world import exports
from wit_world.imports.types import (
    NamedValue,
    NodeError,
    NodeInfo,
    Port,
    Value_Bytes,
    Value_Integer,
    Value_Json,
    Value_Text,
)

# A word is a run of letters or digits, with inner apostrophes ("don't").
WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


class Node(exports.Node):
    def info(self) -> NodeInfo:
        return NodeInfo(
            name="textstats-python",
            version="0.1.0",
            description="Counts the words, lines and characters of a text and finds its top words",
            inputs=[Port("text", "The text to measure", True, None)],
            outputs=[
                Port("words", "Number of words (runs of letters or digits)", True, None),
                Port("lines", "Number of lines", True, None),
                Port("chars", "Number of characters (Unicode code points)", True, None),
                Port("top", "The 3 most frequent words as [[word, count], ...]", True, None),
            ],
            secrets=[],
        )

    def execute(self, inputs: list[NamedValue]) -> list[NamedValue]:
        # `text` is required, so the host guarantees it is there.
        match next(input.value for input in inputs if input.name == "text"):
            case Value_Text(text):
                pass
            case Value_Bytes(data):
                text = data.decode("utf-8", errors="replace")
            case other:
                raise Err(NodeError("not_text", f"text must be text, not {other}"))

        words = [word.lower() for word in WORD.findall(text)]
        # Counter keeps first-appearance order and most_common sorts stably,
        # so ties go to the word seen first.
        top = Counter(words).most_common(3)
        return [
            NamedValue("words", Value_Integer(len(words))),
            NamedValue("lines", Value_Integer(len(text.splitlines()))),
            NamedValue("chars", Value_Integer(len(text))),
            NamedValue("top", Value_Json(json.dumps(top, ensure_ascii=False))),
        ]
