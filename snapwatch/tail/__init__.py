"""Files to chunks: following log files through rotation and truncation, the inotify watcher."""
