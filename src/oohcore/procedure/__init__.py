"""The signed-off procedure, derived from the executable rulesets (DESIGN principle 1; issue 11).

Flowcharts (:mod:`.flowchart`), the procedures manual (:mod:`.manual`) and the tracking of the
materials handed to call handlers (:mod:`.materials`); lint for ambiguity and dead ends with
witnesses (:mod:`.lint`, :mod:`.witness`), scenario tests (:mod:`.scenarios`), changes in an
officer's words (:mod:`.diff`) and their impact on stored calls (:mod:`.impact`). All are
generated from the compiled service options, so what a council signs off and what the engine runs
cannot drift apart (audit action plan items 1, 8, 9, 15 and 16; spec 5.3.1, 2.3.1, 11.11.1h,
14.3h).
"""
