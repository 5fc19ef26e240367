"""Evidence to ranked findings, pure: the Snap facts table, the rules, the ranking."""
