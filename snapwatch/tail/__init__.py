"""Files to chunks, I/O: following log files through rotation and truncation, the inotify watcher."""

from snapwatch import lazy_exports

__all__ = [
    "Chunk",
    "Follower",
    "Notice",
    "NoticeKind",
    "Quiet",
]

__getattr__ = lazy_exports(__name__, {
    "Chunk": "events",
    "Follower": "watch",
    "Notice": "events",
    "NoticeKind": "events",
    "Quiet": "watch",
})
