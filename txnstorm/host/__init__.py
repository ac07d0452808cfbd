"""The host side: which QEMU is under test, the cached guest, accelerator, QMP capabilities, temp dirs."""
