"""The interaction prompt T_inter split into {T_human, T_action, T_object} (paper Sec. 4).

`anchorhoi generate` takes either the explicit form "a man | sitting on | a sofa" or one sentence,
"A man with sideburns sitting on a sofa", split by a transparent rule: the action starts at the
first word ending in "-ing" (after the first word) and the object at the last article
(a / an / the) after it. A sentence the rule cannot split is an error asking for the '|' form.
"""

from __future__ import annotations

__all__ = ["split_prompt"]

_ARTICLES = ("a", "an", "the")


def split_prompt(prompt: str) -> tuple[str, str, str]:
    """(human, action, object). Raises ValueError (one line) when the sentence cannot be split."""
    text = " ".join(str(prompt).split())
    if "|" in text:
        parts = [p.strip() for p in text.split("|")]
        if len(parts) != 3 or not parts[0] or not parts[2]:
            raise ValueError(f"prompt '{text}': the '|' form needs 3 parts 'human | action | object' with a "
                             "non-empty human and object")
        return parts[0], parts[1], parts[2]
    words = text.split(" ")
    lower = [w.lower().strip(",.;:!?") for w in words]
    verb = next((i for i in range(1, len(words)) if lower[i].endswith("ing") and len(lower[i]) > 4), None)
    obj = None if verb is None else next((i for i in range(len(words) - 1, verb, -1) if lower[i] in _ARTICLES), None)
    if verb is None or obj is None:
        raise ValueError(f"cannot split the prompt '{text}' into human, action and object; write it as "
                         "'a man | sitting on | a sofa'")
    return " ".join(words[:verb]), " ".join(words[verb:obj]), " ".join(words[obj:]).rstrip(".!?")
