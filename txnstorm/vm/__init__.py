"""One QEMU process and its guest: command line from a topology, launch and shutdown, QMP, SSH."""
