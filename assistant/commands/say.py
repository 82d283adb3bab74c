from __future__ import annotations

import numpy as np

from assistant.audio.output_file import OutputFile
from assistant.errors import UserFacingError
from assistant.model_store import ModelStore
from assistant.phrases import speakable
from assistant.tts import create_engine


def run(args, config) -> int:
    text = speakable(args.text)
    if not text:
        raise UserFacingError("nothing to say: the text is empty")
    output = OutputFile(args.output)  # refused before the voice loads if it cannot work
    engine = create_engine(config.tts, ModelStore())
    audio = np.concatenate(list(engine.synthesize(text)) or [np.zeros(0, np.float32)])
    output.write(audio, engine.sample_rate)
    print(f"{args.output}: {audio.size / engine.sample_rate:.2f} s")
    return 0
