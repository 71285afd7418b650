"""Defaults that the server's settings share with the semantic layer.

Its own module, importing nothing: the settings (loaded by every `ansf` command) take them from here without
loading the language-server machinery, and the layer's own defaults cannot drift from the settings'."""

# The type net's budget per edit, a cold start of the checker included (ANSF_TYPE_NET_S).
TYPE_NET_SECONDS = 12.0

# A semantic call's deadline: past it the caller gets the reason at once (ANSF_SEMANTIC_DEADLINE_S).
SEMANTIC_DEADLINE_SECONDS = 20.0

# The most of a call's deadline the type net may take (the defaults' own ratio): the rest is the edit's reads,
# plan and write, which run on after a deadline has answered the caller, so a net that could fill the deadline
# made an edit land after its caller was told there was no answer (and a retried insert land twice).
TYPE_NET_MAX_SHARE = TYPE_NET_SECONDS / SEMANTIC_DEADLINE_SECONDS

# Threads answering semantic calls at once (ANSF_SEMANTIC_WORKERS).
SEMANTIC_WORKERS = 4
