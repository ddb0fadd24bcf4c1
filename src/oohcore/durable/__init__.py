"""What outlives a process: durable timers, the transactional outbox and the runner.

Timers and messages are written in the same transaction as the step that causes them; the
runner fires what is due and sends through the channels. Nothing here knows a call: the engine
gives the runner its callbacks. The modules: ``timers``, ``outbox``, ``receipts`` (attempts and
delivery receipts), ``sending`` (one worker per channel), ``runner`` and ``health`` (the lag).
"""
