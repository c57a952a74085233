"""The performance benchmark (``make bench``): okr-sync against the floor and against dlt.

Each side runs in its own process against one sandbox world served by another process, so
every peak RSS is the side's own and the emulators' CPU is measured apart.
"""
