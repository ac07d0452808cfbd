"""Verdicts: qemu-img compare, cross-disk stamps, drained means still, rollback, known issues."""
