"""Example Outboard plugins written with the Python SDK (``outboard_plugin``).

- :mod:`.secret_scrubber`: ``secret-scrubber``, sequential ``pre_container``:
  redacts the job's environment variables whose names look secret.
- :mod:`.chat_notifier`: ``chat-notifier``, parallel ``post_container``: posts
  a chat message about the finished job to a webhook on this machine, or
  appends it to a file.
- :mod:`.event_notifier`: ``event-notifier``, no phase: posts the host's
  ``job.finished`` and ``plugin.failed`` events, in chat-notifier's style.
"""
