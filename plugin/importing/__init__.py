"""A store's history, imported at install (and on demand) into customer states, without acting on it."""
from plugin.importing.importer import Progress, enqueue, is_importing, resume_stopped, run

__all__ = ["Progress", "enqueue", "is_importing", "resume_stopped", "run"]
