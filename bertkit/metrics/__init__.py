"""Local metric code: nothing here reaches a hub."""
