"""Incident lifecycle to messages to delivery: policy, rendering, targets."""
