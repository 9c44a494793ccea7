"""An engine stand-in that "generates" a fixed token text, for tests of what follows.

It has the two methods ``run_task`` uses (``prepare`` and ``generate``) and streams the
text in small pieces, as the real engine does, so parsing and mask decoding happen
object by object while the stream goes on.
"""

from __future__ import annotations

from collections.abc import Iterator

from app.engine.events import ResultEvent, Timings, TokenEvent
from app.engine.image_input import PreparedImage, prepare_image

TIMINGS = Timings(0.1, 0.1, 0.2, 0.3, 10.0, 260, False)


class ScriptedEngine:
    def __init__(self, text: str, piece: int = 5, side: int = 32) -> None:
        self.text = text
        self.piece = piece
        self.side = side
        self.seen: list[str] = []  # pieces handed out so far (tests check what came when)

    def prepare(self, image) -> PreparedImage:
        return prepare_image(image, self.side)

    def generate(self, prepared, prompt, options=None, cancel=None
                 ) -> Iterator[TokenEvent | ResultEvent]:
        pieces = [self.text[i:i + self.piece] for i in range(0, len(self.text), self.piece)]
        for index, piece in enumerate(pieces):
            self.seen.append(piece)
            yield TokenEvent(token_id=1000 + index, text=piece, index=index)
        yield ResultEvent(tokens=list(range(1000, 1000 + len(pieces))), text=self.text,
                          prompt=prompt, prompt_tokens=[2], stop_reason="eos",
                          timings=TIMINGS, image_size=prepared.original_size)
