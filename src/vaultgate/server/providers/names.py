"""How a provider's name is said in a sentence: "an OpenAI key", "a GitHub key"."""

from __future__ import annotations

# Letters whose spoken name starts with a vowel sound: "an SMS", "an n8n", "an xAI".
_VOWEL_LETTERS = frozenset("AEFHILMNORSX")
# Words spelled with a vowel but said with a consonant first: "a unicorn", "a one-off".
_CONSONANT_SOUNDS = ("uni", "use", "usa", "uti", "eu", "one")


def with_article(name: str) -> str:
    """``name`` with "a" or "an" as it is said: "an OpenAI", "an AWS", "a GitHub"."""
    word = name.split(" ", 1)[0]
    spelled = word.isupper() or word[1:2].isupper() or any(c.isdigit() for c in word)
    if spelled:
        vowel = word[:1].upper() in _VOWEL_LETTERS
    else:
        lower = word.lower()
        vowel = lower[:1] in "aeiou" and not lower.startswith(_CONSONANT_SOUNDS)
    return f"{'an' if vowel else 'a'} {name}"
