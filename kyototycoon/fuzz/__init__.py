"""Fuzzing from the protocol schemas.

- :mod:`.generate`: valid frames and their field layout, walked from the schema IR.
- :mod:`.mutate`: mutations picked by what a field is for (length, count, magic, op, flags).
- :mod:`.strategies`: the same as hypothesis strategies (needs ``hypothesis``).
- :mod:`.cases`, :mod:`.session`: cases for a server and the judging of its answers.
- :mod:`.targets`: this package's own parsers under the "only ProtocolError, bounded
  time and memory" contract.
- :mod:`.difftest`, :mod:`.difftest_cli`: the same random requests to two servers, answers
  compared (``kyototycoon difftest``).
- :mod:`.cli`: ``kyototycoon fuzz`` / ``python -m kyototycoon.fuzz``.
"""
