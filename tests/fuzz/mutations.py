"""Mutations of valid records' bytes: bit flips, truncation, and splices of two messages.

Seeded `random.Random`, not Hypothesis: a mutant costs microseconds, so mutants are most of the
fuzz volume, while Hypothesis builds the structured cases. A mutant may stay valid (a flipped
bit in a name's letter): the caller asks the codec and sends only the ones it refuses.
"""

from __future__ import annotations

import random
from collections.abc import Callable

Mutation = Callable[[random.Random, bytes, bytes], bytes]
"""(rng, the message, another message) -> mutant bytes."""


def bit_flips(rng: random.Random, value: bytes, other: bytes) -> bytes:
    """One to eight bits flipped anywhere."""
    if not value:
        return b"\x00"
    mutant = bytearray(value)
    for _flip in range(rng.randint(1, 8)):
        at = rng.randrange(len(mutant))
        mutant[at] ^= 1 << rng.randrange(8)
    return bytes(mutant)


def truncation(rng: random.Random, value: bytes, other: bytes) -> bytes:
    """A prefix: a record cut anywhere, the empty one included."""
    return value[: rng.randrange(len(value))] if value else value


def splice(rng: random.Random, value: bytes, other: bytes) -> bytes:
    """The head of one message joined to the tail of another."""
    return value[: rng.randint(0, len(value))] + other[rng.randint(0, len(other)) :]


def byte_noise(rng: random.Random, value: bytes, other: bytes) -> bytes:
    """A few bytes replaced by arbitrary ones (NUL, invalid UTF-8, quotes, braces)."""
    if not value:
        return bytes([rng.randrange(256)])
    mutant = bytearray(value)
    for _byte in range(rng.randint(1, 4)):
        mutant[rng.randrange(len(mutant))] = rng.choice([0, 0x22, 0x5C, 0x7B, 0x7D, 0xC3, 0xFF])
    return bytes(mutant)


MUTATIONS: dict[str, Mutation] = {
    "bit_flips": bit_flips,
    "truncation": truncation,
    "splice": splice,
    "byte_noise": byte_noise,
}


def mutate(rng: random.Random, value: bytes, other: bytes) -> tuple[str, bytes]:
    """A mutant of value (other feeds splices) and the name of the mutation that made it."""
    name = rng.choice(list(MUTATIONS))
    return name, MUTATIONS[name](rng, value, other)
