"""Values every layer shares, known before anything runs (standard library only: the input check
imports it before the virtualenv exists)."""

from __future__ import annotations

ACCEL_CHOICES = ("auto", "kvm", "tcg")  # ACCEL=: auto probes KVM with a real boot, then falls back to TCG
