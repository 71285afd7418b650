"""The resource governor: memory readings (cgroup-aware) and the operating phases they select."""
