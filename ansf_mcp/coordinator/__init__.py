"""The coordinator: estimate each agent's chance of success on each task, then assign with an exact solver."""
