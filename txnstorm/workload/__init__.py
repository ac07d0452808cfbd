"""What writes during a transaction: fio in the guest, the stamp writers, the NBD client."""
