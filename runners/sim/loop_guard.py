"""Checks the compiled simulator loops on import; `runners.sim` imports it before anything else.

`BUILD` says what the loop modules run as ("compiled", or "python (...)" and why); importing
this raises BuildError when a compiled loop module does not match its source
(`runners.sim.loop_build` has the rules).
"""

from __future__ import annotations

from runners.sim.loop_build import choose_build

BUILD = choose_build()
