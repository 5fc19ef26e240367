"""Hostile conditions, each with a real `snapwatch` process, real files and small filesystems."""
