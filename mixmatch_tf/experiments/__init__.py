"""The mixup paper's experiments beyond accuracy tables (run through scripts/reproduce.py)."""
